package ocsp

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/certcenter/certcenter/store"
)

// PresignTx signs the responses of certs, as they stand in tx, and stores
// them with their refresh-schedule keys in tx: for a bulk writer (the
// offline seed) that writes new certificates and their responses in one
// transaction, so neither a second pass over the store nor a dirty mark is
// needed for them. The certificates must be new ones (no response is
// stored for them yet): nothing stored is read, so the cost does not grow
// with the store. It clears no dirty mark either; a writer that lets the
// store mark its certificates (see store.Store.SetOCSPPresigned) leaves the
// marks to the next Refresh, which finds the responses current.
func (r *Responder) PresignTx(ctx context.Context, tx *store.Tx, certs []*store.Cert) error {
	if len(certs) == 0 {
		return nil
	}
	recs, err := r.signAll(ctx, certs)
	if err != nil {
		return err
	}
	for i, rec := range recs {
		k := hex.EncodeToString(certs[i].Serial)
		b, err := rec.encode()
		if err != nil {
			return fmt.Errorf("encoding the response for %s: %w", k, err)
		}
		if err := tx.PutBlob(blobNamespace, k, b); err != nil {
			return err
		}
		if err := tx.PutBlob(dueNamespace, dueKey(rec, k), nil); err != nil {
			return err
		}
	}
	for range recs {
		r.m.signed("refresh")
	}
	return nil
}
