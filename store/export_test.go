package store

// TamperAudit overwrites (or, with remove set, deletes) a stored audit entry
// without touching the head, so tests can prove that verification notices
// tampering. It is test-only: production code has no way to do this.
func (tx *Tx) TamperAudit(e *AuditEntry, remove bool) error {
	if remove {
		return tx.txn.Delete(auditKey(e.Seq))
	}
	return tx.putAudit(e)
}
