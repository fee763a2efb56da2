package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

// The tampering cases live beside the store because only a test of package
// store can forge a stored record (Tx.TamperAudit is in export_test.go).
func TestAuditVerifyNoticesTampering(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(tx *store.Tx, entries []*store.AuditEntry) error
		want   string // "" = intact
	}{
		{"fail/changed details", func(tx *store.Tx, es []*store.AuditEntry) error {
			e := es[2]
			e.Details = map[string]string{"comment": "forged"}
			return tx.TamperAudit(e, false)
		}, "entry 3 (ra.approve request/req-2) was changed"},
		{"fail/rehashed entry breaks the next link", func(tx *store.Tx, es []*store.AuditEntry) error {
			e := es[2]
			e.Actor = "staff:mallory"
			e.Hash = audit.Hash(e)
			return tx.TamperAudit(e, false)
		}, "entry 4 does not follow"},
		{"fail/gap", func(tx *store.Tx, es []*store.AuditEntry) error { return tx.TamperAudit(es[1], true) }, "entry 2 missing"},
		{"fail/tail removed", func(tx *store.Tx, es []*store.AuditEntry) error { return tx.TamperAudit(es[4], true) }, "the head names entry 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l := audit.New(audit.Options{Store: st})
			for i := range 5 {
				if _, err := l.Append(ctx, audit.Record{Actor: "staff:alice", Action: "ra.approve", Object: fmt.Sprintf("request/req-%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.tamper != nil {
				err = st.Update(ctx, func(tx *store.Tx) error {
					var es []*store.AuditEntry
					if err := tx.EachAudit(func(e *store.AuditEntry) error { es = append(es, e); return nil }); err != nil {
						return err
					}
					return tc.tamper(tx, es)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			rep, err := l.Verify(ctx)
			if tc.want == "" {
				if err != nil || rep.Entries != 5 || rep.Head == "" {
					t.Fatalf("Verify = %+v, %v; want 5 intact entries", rep, err)
				}
				return
			}
			if !errors.Is(err, audit.ErrBroken) || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Fatalf("Verify = %+v, %v; want audit.ErrBroken mentioning %q", rep, err, tc.want)
			}
		})
	}
}
