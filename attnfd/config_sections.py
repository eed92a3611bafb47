"""What each training config field is, said once, beside the field.

Every field of ``TrainConfig`` is made with ``setting`` and so names its section:

- ``run``: what kind of run (teacher or student) and the recipe its values were filled from;
- ``data``, ``model``, ``optimisation``: what a run learns from, what it is and how it is
  trained. A teacher is these three sections; its cache key hashes them whole
  (``attnfd.config.content_key``), so a field added to one of them changes which teacher is
  reused, and a field added elsewhere cannot;
- ``distillation``: what a student takes from its teacher, and which teacher that is;
- ``placement``: where and how a run is placed and kept (device, workers, folders), which
  never changes what it learns.

and says whether it tells apart the rows of a results table (``row``): ``yes``; ``never``
(where a trial ran, its seed: the trials of one row differ in these); ``when_distilling``
(meaningless for a student trained alone, whose row ignores it). A study writes these into
its study.json for the analysis, which imports no torch and reads them from
there (``field_roles``).

``check_sections`` refuses a config class with a field that does not say these, so that no
field can be added without deciding whether it is part of a teacher.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SECTIONS = ("run", "data", "model", "optimisation", "distillation", "placement")
# the sections a teacher is made of: its content key hashes them, and it takes them from the student
TEACHER_SECTIONS = ("data", "model", "optimisation")
ROW_ROLES = ("yes", "never", "when_distilling")


def setting(default: Any, section: str, *, row: str = "yes", if_set: bool = False, teacher_from: str | None = None,
            teacher_run: bool = False) -> Any:
    """A config field with its metadata.

    ``if_set``: (teacher sections) in a teacher's key only when it differs from its default: the
    field was added after teachers were cached, and each of those keeps its key.
    ``teacher_from``: (teacher sections) the student's field that holds the teacher's value
    (the teacher's ``backbone`` is the student's ``teacher_backbone``).
    ``teacher_run``: (placement) the teacher's run takes the student's value; other placement
    fields are the teacher's own (its folder, its threads: a study gives a teacher the whole node)."""
    return dataclasses.field(default=default, metadata={
        "section": section, "row": row, "if_set": if_set, "teacher_from": teacher_from, "teacher_run": teacher_run})


def check_sections(cls: type) -> type:
    """``cls`` (a dataclass), after checking that each of its fields was made by ``setting`` with
    metadata that fits its section; raises TypeError naming the first field that does not."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        section = meta.get("section")
        if section not in SECTIONS:
            raise TypeError(f"{cls.__name__}.{f.name} has no section; make it with setting(default, section) "
                            f"naming one of {', '.join(SECTIONS)}")
        if meta.get("row") not in ROW_ROLES:
            raise TypeError(f"{cls.__name__}.{f.name}: row must be one of {', '.join(ROW_ROLES)}, got {meta.get('row')!r}")
        if (meta.get("if_set") or meta.get("teacher_from")) and section not in TEACHER_SECTIONS:
            raise TypeError(f"{cls.__name__}.{f.name}: if_set and teacher_from apply to the teacher's sections "
                            f"({', '.join(TEACHER_SECTIONS)}), not to {section}")
        if meta.get("teacher_run") and section != "placement":
            raise TypeError(f"{cls.__name__}.{f.name}: teacher_run applies to placement fields, not to {section}")
    return cls


def section_fields(cls: type, *sections: str) -> list[dataclasses.Field]:
    """The fields of ``cls`` in ``sections``, in the class's order."""
    return [f for f in dataclasses.fields(cls) if f.metadata["section"] in sections]


def field_roles(cls: type) -> dict[str, dict[str, str]]:
    """Each field's section and row role by name, as a study writes them into study.json
    (``config_fields``) for the analysis."""
    return {f.name: {"section": f.metadata["section"], "row": f.metadata["row"]} for f in dataclasses.fields(cls)}
