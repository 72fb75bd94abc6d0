"""Evidence a rollback leaves behind: the incident record, the bundle, the follow-up drafts."""
