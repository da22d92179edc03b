"""WhatsApp and SMS through Twilio: parsing its webhooks, rendering replies, sending."""

from __future__ import annotations

from adapters.twilio.inbound import (
    BadForm,
    FormData,
    MediaRef,
    OptChange,
    ParsedMessage,
    StatusReport,
    opt_change,
    parse_status_form,
    parse_twilio_form,
    signature_valid,
)
from adapters.twilio.media import MediaFetcher, MediaProblem, MediaRejected, problem_of_type
from adapters.twilio.render import render_sms, render_whatsapp, sms_parts
from adapters.twilio.sender import BaseUrlHttpClient, TwilioSender, TwilioSettings, map_error

__all__ = [
    "BadForm",
    "BaseUrlHttpClient",
    "FormData",
    "MediaFetcher",
    "MediaProblem",
    "MediaRef",
    "MediaRejected",
    "OptChange",
    "ParsedMessage",
    "StatusReport",
    "TwilioSender",
    "TwilioSettings",
    "map_error",
    "opt_change",
    "parse_status_form",
    "parse_twilio_form",
    "problem_of_type",
    "render_sms",
    "render_whatsapp",
    "signature_valid",
    "sms_parts",
]
