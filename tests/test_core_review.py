"""Reviewing proposals in the core: accept (provenance kept), reject, relabel, accept every one
above a score; each one undoable and redoable step that survives a reopen."""

from __future__ import annotations

import pytest

from seem_annotator.core import runs
from seem_annotator.core.project import Project
from seem_annotator.core.review import ReviewError
from tests.conftest import copy_samples
from tests.test_core_runs import P, box_rle


@pytest.fixture
def project(tmp_path):
    folder = copy_samples(tmp_path / "photos")
    with Project.create(folder) as project:
        image = project.images()[0]
        h, w = image.height, image.width
        run, _ = runs.open_run(project.store, "k", {}, "focalt_v1", "abc", "local")
        props = [P("dog", 0.9, "everything", box_rle(h, w, 0, 50, 0, 50), [0, 0, 50, 50]),
                 P("cat", 0.6, "text", box_rle(h, w, 100, 150, 100, 150), [100, 100, 50, 50]),
                 P("unknown", 0.2, "everything", box_rle(h, w, 200, 250, 0, 50), [0, 200, 50, 50])]
        runs.merge_image(project.store, run.id, image.id, props, None, 0.1, 0.7)
        yield project


def test_accept_keeps_provenance_and_undoes(project):
    image = project.images()[0]
    dog = project.proposals(image.id)[0]
    ann = project.accept_proposal(dog.id, reviewed_by="ana")
    assert project.label(ann.label_id).name == "dog"
    assert ann.provenance == f"run:{dog.run_id}/everything" and ann.score == 0.9
    assert ann.reviewed_by == "ana" and ann.reviewed_at > 0
    assert ann.source == {"run_id": dog.run_id, "mode": "everything", "model": "focalt_v1", "proposal_id": dog.id}
    assert ann.rle == dog.rle
    assert [p.label for p in project.proposals(image.id)] == ["cat", "unknown"]
    with pytest.raises(ReviewError, match="already accepted"):
        project.accept_proposal(dog.id)
    assert project.undo(image.id) == "accept_proposal"
    assert project.annotations(image.id) == []
    assert [p.label for p in project.proposals(image.id)] == ["dog", "cat", "unknown"]
    assert project.redo(image.id) == "accept_proposal"
    assert project.annotations(image.id)[0].provenance == f"run:{dog.run_id}/everything"


def test_reject_relabel_and_accept_above(project, tmp_path):
    image = project.images()[0]
    dog, cat, unknown = project.proposals(image.id)
    project.reject_proposal(cat.id)
    assert runs.get_proposal(project.store, cat.id).state == runs.REJECTED
    assert project.relabel_proposal(unknown.id, " Bird ").label == "Bird"
    with pytest.raises(ReviewError, match="cannot be empty"):
        project.relabel_proposal(unknown.id, "  ")
    assert project.accept_proposals_above(image.id, 0.95) == []  # nothing: no step recorded
    accepted = project.accept_proposals_above(image.id, 0.1, reviewed_by="bo")
    assert [project.label(a.label_id).name for a in accepted] == ["dog", "Bird"]
    assert all(a.reviewed_by == "bo" for a in accepted)
    assert project.proposals(image.id) == [] and project.info()["proposals"] == 0
    assert project.review_states()[image.id] == "in_progress"
    assert [a for a, _ in project.history(image.id)] == ["reject_proposal", "relabel_proposal", "accept_proposals"]
    assert project.undo(image.id) == "accept_proposals"  # one step undoes the whole batch
    assert project.annotations(image.id) == []
    assert [p.label for p in project.proposals(image.id)] == ["dog", "Bird"]
    project.undo(image.id)
    project.undo(image.id)
    assert [p.label for p in project.proposals(image.id)] == ["dog", "cat", "unknown"]
    assert project.review_states()[image.id] == "review"
    # Persisted: a reopen sees the same state and can redo.
    store_path = project.store_path
    project.close()
    with Project.open(store_path) as again:
        assert again.redo(image.id) == "reject_proposal"
        assert [p.label for p in again.proposals(image.id)] == ["dog", "unknown"]
