package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// TargetControl is what the operator routes need of the publisher: pause,
// resume and resync one target. also runs in the store transaction that
// records the operation, so the audit record commits with it.
type TargetControl interface {
	Pause(ctx context.Context, name string, also func(*store.Tx) error) error
	Resume(ctx context.Context, name string, also func(*store.Tx) error) error
	Resync(ctx context.Context, name string, also func(*store.Tx) error) error
}

// ErrNoSuchTarget is returned (wrapped) for a target name not configured.
var ErrNoSuchTarget = errors.New("no such publishing target")

// targetOp is one of the operator routes
// POST /api/v1/diagnostics/targets/{name}/{pause,resume,resync}: it does
// the operation with its audit record ("publish.<op>", object
// "target/<name>") and answers the target's state.
func (a *API) targetOp(op string) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		ctl := a.opts.Publishing
		if ctl == nil {
			return httpapi.NotFound("%v %q: %s", ErrNoSuchTarget, name, noTargetsNote)
		}
		do := map[string]func(context.Context, string, func(*store.Tx) error) error{
			"pause": ctl.Pause, "resume": ctl.Resume, "resync": ctl.Resync,
		}[op]
		p, _ := httpapi.PrincipalFrom(r.Context())
		var entry *store.AuditEntry
		err := do(r.Context(), name, func(tx *store.Tx) error {
			if a.opts.Audit == nil {
				return nil
			}
			var err error
			entry, err = a.opts.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "publish." + op, Object: "target/" + name})
			return err
		})
		if errors.Is(err, ErrNoSuchTarget) {
			return httpapi.NotFound("%v", err)
		}
		if err != nil {
			return fmt.Errorf("%s of publishing target %s: %w", op, name, err)
		}
		if entry != nil {
			a.opts.Audit.Logged(entry)
		}
		ts, err := a.diag.TargetList(r.Context())
		if err != nil {
			return err
		}
		for _, t := range ts.Targets {
			if t.Name == name {
				return httpapi.WriteJSON(w, http.StatusOK, t)
			}
		}
		return httpapi.NotFound("%v %q", ErrNoSuchTarget, name)
	}
}
