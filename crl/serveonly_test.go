package crl

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/store"
)

// TestServeOnlyNeverBuilds is a read replica's builder: it refuses to
// build, serves a CRL once one is written to its store (as replication
// does), and answers 503 for a missing one instead of building it.
func TestServeOnlyNeverBuilds(t *testing.T) {
	e := newEnv(t, envOpts{})
	ro, err := New(Options{Store: e.store, CA: e.ca, Now: e.clock.Now, ServeOnly: true, Interval: 24 * time.Hour,
		Validity: 7 * 24 * time.Hour, DeltaValidity: time.Hour, DeltaDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ctx := context.Background()
	if err := ro.Full(ctx, "demo"); !errors.Is(err, ErrServeOnly) {
		t.Fatalf("Full: %v, want ErrServeOnly", err)
	}
	if err := ro.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	file := crlscope.Complete("demo").File()
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/crl/"+file, nil)
		r.SetPathValue("file", file)
		ro.ServeCRL(w, r)
		return w
	}
	if w := serve(); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("missing CRL: %d, want 503", w.Code)
	}
	if err := e.store.View(ctx, func(tx *store.Tx) error { _, err := tx.Blob(crlscope.Namespace, file); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the serve-only builder built a CRL: %v", err)
	}
	// The primary's builder writes one (on a replica: replication does).
	if err := e.b.Full(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	w := serve()
	if w.Code != http.StatusOK || string(w.Body.Bytes()) != string(e.blob(file)) {
		t.Fatalf("stored CRL: %d, %d bytes", w.Code, w.Body.Len())
	}
}
