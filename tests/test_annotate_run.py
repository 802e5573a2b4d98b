"""The run driver end to end with the shared tiny fixture model over COCO subset images: every
image merged once, resume skips and duplicates nothing, answers equal across projects,
suppression against an accepted annotation, an unreadable image recorded as failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seem_annotator.annotate import run as runner
from seem_annotator.annotate.executor import LocalExecutor
from seem_annotator.annotate.settings import RunSettings
from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import runs
from seem_annotator.core.history import Recorder
from seem_annotator.core.project import Project
from tests.conftest import DATA, SHARED

FIXTURE = SHARED / "seem" / "fixtures" / "tiny_focalt_v1"
IMAGES = DATA / "COCO_MVal_subset" / "img"
pytestmark = pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file() or not IMAGES.is_dir(),
                                reason="shared fixture model or COCO subset missing")
SETTINGS = RunSettings(modes=("everything", "text"), labels=("person", "dog", "car"), threshold=0.05)


def make_folder(dest: Path, count: int = 5) -> Path:
    dest.mkdir(parents=True)
    for path in sorted(IMAGES.iterdir())[:count]:
        shutil.copy(path, dest / path.name)
    return dest


def proposals_of(project: Project) -> list[tuple]:
    """Comparable proposals: (file name, label, mode, score, rle counts), in a fixed order."""
    names = {i.id: i.file_name for i in project.images()}
    return sorted((names[p.image_id], p.label, p.mode, p.score, p.rle["counts"])
                  for p in project.proposals(state=None))


@pytest.fixture(scope="module")
def executor():
    """One built annotator shared by the tests (building is the slow part)."""
    with Project.create(make_folder(Path(__import__("tempfile").mkdtemp()) / "x", 1)) as project:
        spec = runner.prepare_run(project, SETTINGS, str(FIXTURE / "config.yaml"), str(FIXTURE / "state_dict.pt"))
    return LocalExecutor(annotator=spec.build())


def spec_for(project: Project):
    return runner.prepare_run(project, SETTINGS, str(FIXTURE / "config.yaml"), str(FIXTURE / "state_dict.pt"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, executor):
    folder = make_folder(tmp_path_factory.mktemp("ref") / "photos")
    with Project.create(folder) as project:
        summary = runner.run(project, spec_for(project), executor)
        return summary, proposals_of(project), {i.file_name: i for i in project.images()}


def test_run_merges_every_image_once_and_resumes_without_duplicates(tmp_path, executor, reference):
    ref_summary, ref_props, _ = reference
    assert (ref_summary.images, ref_summary.skipped, ref_summary.failed) == (5, 0, 0)
    assert ref_summary.proposals == len(ref_props) > 0
    with Project.create(make_folder(tmp_path / "photos")) as project:
        seen = []
        first = runner.run(project, spec_for(project), executor, progress=lambda d, t: seen.append((d, t)),
                           should_stop=lambda: len(seen) > 2)  # stopped after two images
        assert first.images == 2 and seen[0] == (0, 5)
        assert runs.get_run(project.store, first.run_id).state == runs.RUNNING
        second = runner.run(project, spec_for(project), executor)
        assert second.run_id == first.run_id and second.resumed
        assert (second.images, second.skipped) == (3, 2)
        assert runs.get_run(project.store, first.run_id).state == runs.FINISHED
        third = runner.run(project, spec_for(project), executor)
        assert (third.images, third.skipped, third.proposals) == (0, 5, 0)
        # Same answers as the uninterrupted run on another project: per-image seeds, no state.
        assert proposals_of(project) == ref_props
        image = project.images()[0]
        for p in project.proposals(image.id):
            assert p.rle["size"] == [image.height, image.width] and p.state == runs.PENDING
            assert p.bbox[2] > 0 and p.bbox[3] > 0
        assert project.review_states()[image.id] == "review"
        # Other settings are another run.
        other = runner.prepare_run(project, RunSettings(modes=("everything",), seed=1),
                                   str(FIXTURE / "config.yaml"), str(FIXTURE / "state_dict.pt"))
        assert other.settings.key() != spec_for(project).settings.key()


def test_accepted_annotation_suppresses_the_same_proposal(tmp_path, executor, reference):
    _, ref_props, _ = reference
    with Project.create(make_folder(tmp_path / "photos")) as project:
        target = ref_props[0]
        image = project.image_by_name(target[0])
        person = project.add_label("person")
        store = project.store
        from seem_annotator.core import masks

        rle = {"size": [image.height, image.width], "counts": target[4]}
        with store.transaction():
            rec = Recorder(store, image.id)
            ann_ops.insert(rec, image.id, person.id, masks.normalize(rle))
            rec.commit("accept")
        runner.run(project, spec_for(project), executor)
        got = proposals_of(project)
        assert target not in got
        assert got == [p for p in ref_props if p[0] != target[0] or
                       masks.iou(rle, {"size": rle["size"], "counts": p[4]}) < SETTINGS.suppress_iou]


def test_unreadable_image_is_failed_and_the_run_goes_on(tmp_path, executor, reference):
    folder = make_folder(tmp_path / "photos", 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with Project.create(folder) as project:
        summary = runner.run(project, spec_for(project), executor)
        assert (summary.images, summary.failed) == (3, 1)
        assert list(summary.errors) == ["broken.jpg"] and "broken.jpg" in summary.errors["broken.jpg"]
        broken = project.image_by_name("broken.jpg")
        assert runs.image_states(project.store, summary.run_id)[broken.id] == runs.FAILED
        assert not project.proposals(broken.id)
        # A rerun tries the failed image again (it may have been fixed) and skips the others.
        again = runner.run(project, spec_for(project), executor)
        assert (again.images, again.skipped, again.failed) == (1, 2, 1)


def test_select_images_by_glob(tmp_path):
    with Project.create(make_folder(tmp_path / "photos", 3)) as project:
        names = [i.file_name for i in runner.select_images(project, "a*.jpg")]
        assert names and all(n.startswith("a") for n in names)
        with pytest.raises(Exception, match="No image of the project matches"):
            runner.select_images(project, "zzz*")


def test_exemplar_mode_finds_things_like_an_accepted_annotation(tmp_path, executor):
    with Project.create(make_folder(tmp_path / "photos", 3)) as project:
        runner.run(project, spec_for(project), executor)
        first = project.proposals(project.images()[0].id)[0]
        project.accept_proposal(first.id, label="dog", reviewed_by="t")
        settings = RunSettings(modes=("exemplar",), labels=("dog",), threshold=0.0)
        spec = runner.prepare_run(project, settings, str(FIXTURE / "config.yaml"), str(FIXTURE / "state_dict.pt"))
        assert [e.label for e in spec.exemplars] == ["dog"]
        summary = runner.run(project, spec, LocalExecutor(annotator=spec.build()))
        assert summary.failed == 0
        found = [p for p in project.proposals() if p.mode == "exemplar"]
        assert found and all(p.label == "dog" for p in found)
        # The exemplar's own region is an accepted annotation: not proposed again on its image.
        assert all(masks_iou(p.rle, first.rle) < 0.7 for p in found if p.image_id == first.image_id)


def masks_iou(a: dict, b: dict) -> float:
    from seem_annotator.core import masks

    return masks.iou(a, b)
