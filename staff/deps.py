"""The signed-in staff member as a route parameter, per permission (pages and forms)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from staff.console import actor, viewer
from staff.permissions import Perm, Staff

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
