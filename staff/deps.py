"""The signed-in staff member as a route parameter, per permission (pages and forms)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Path

from staff.console import actor, viewer
from staff.permissions import Perm, Staff

# The largest id a database column holds (BIGINT). A larger number is no row of ours, and
# the database driver fails on it (a 500) instead of finding nothing: it is refused (422).
MAX_ID = 2**63 - 1
# A row's id in the URL: /conversations/{conversation_id} and the like.
RowId = Annotated[int, Path(ge=0, le=MAX_ID)]
# A row's id in a form; absent when the form makes a new one.
FormRowId = Annotated[int | None, Form(ge=0, le=MAX_ID)]

# Pages (GET): signed in and allowed.
QueueViewer = Annotated[Staff, Depends(viewer(Perm.QUEUE))]
RequestsViewer = Annotated[Staff, Depends(viewer(Perm.REQUESTS))]
BeneficiaryViewer = Annotated[Staff, Depends(viewer(Perm.BENEFICIARY))]
Exporter = Annotated[Staff, Depends(viewer(Perm.EXPORT))]
CannedViewer = Annotated[Staff, Depends(viewer(Perm.CANNED_USE))]
ReportsViewer = Annotated[Staff, Depends(viewer(Perm.REPORTS))]
StaffManager = Annotated[Staff, Depends(viewer(Perm.STAFF_MANAGE))]
KnowledgeViewer = Annotated[Staff, Depends(viewer(Perm.KNOWLEDGE_MANAGE))]
SettingsViewer = Annotated[Staff, Depends(viewer(Perm.SETTINGS))]
OutboxViewer = Annotated[Staff, Depends(viewer(Perm.OUTBOX))]

# Forms (POST): signed in, the CSRF token of the session, and allowed.
AnyActor = Annotated[Staff, Depends(actor())]
Claimer = Annotated[Staff, Depends(actor(Perm.QUEUE))]
Replier = Annotated[Staff, Depends(actor(Perm.REPLY))]
Reviewer = Annotated[Staff, Depends(actor(Perm.REVIEW))]
ContactLogger = Annotated[Staff, Depends(actor(Perm.CONTACT_LOG))]
Anonymiser = Annotated[Staff, Depends(actor(Perm.ANONYMISE))]
CannedManager = Annotated[Staff, Depends(actor(Perm.CANNED_MANAGE))]
StaffAdmin = Annotated[Staff, Depends(actor(Perm.STAFF_MANAGE))]
KbEditor = Annotated[Staff, Depends(actor(Perm.KNOWLEDGE_MANAGE))]
OutboxRetrier = Annotated[Staff, Depends(actor(Perm.OUTBOX))]
