package store

// SetOCSPPresigned says whether every transaction that writes a
// certificate also stores that certificate's current OCSP response (the
// offline seed does, in the certificate's own transaction, with
// ocsp.Responder.PresignTx). While on, certificate writes leave no OCSP
// dirty mark: the mark would name work already done, and clearing it again
// would leave a tombstone per certificate for start-up to skip. Only a
// process that is the store's sole writer may turn it on (the store is
// opened by one process at a time; the seed opens it with the server
// stopped), and it must turn it off before anything else writes.
func (s *Store) SetOCSPPresigned(on bool) { s.ocspPresigned.Store(on) }
