"""The email channel: reading a mailbox over IMAP, parsing mail into what the beneficiary
wrote, rendering replies in the thread, sending them over SMTP."""
