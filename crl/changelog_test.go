package crl

import (
	"context"
	"testing"

	"github.com/certcenter/certcenter/store"
)

// Each stored CRL is in the change log, by file, in the same transaction.
func TestChangeLogHasEveryStoredCRL(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.b.Full(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	es, err := e.store.ReadLog(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, en := range es {
		if en.Kind == store.LogCRLPublished {
			files[en.Key] = true
		}
	}
	for _, f := range []string{"demo.crl", "demo-delta.crl", "demo-arl.crl"} {
		if !files[f] {
			t.Errorf("no crl-published entry for %s (entries %+v)", f, es)
		}
	}
}
