package server

import (
	"context"
	"net/http"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/store"
)

// wireDesk mounts the service desk's API and runs its SLA clock loop. Its
// 5x8 clocks use the RA's working-day calendar. The knowledge base
// (desk.Options.Articles, package desk/kb) and the opening of USBKey
// replacement requests (package token) are filled here when those
// packages are merged; until then their routes answer 501, and a ticket's
// replacement request state is read from the store's RA request.
func wireDesk(c *components) error {
	cal, err := ra.CalendarFrom(c.cfg.RA)
	if err != nil {
		return err
	}
	d, err := desk.New(desk.Options{
		Store: c.core.store, Audit: c.auditLog, Config: c.cfg.Desk, Calendar: cal, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
		Replacements: storeReplacements{c.core.store},
	})
	if err != nil {
		return err
	}
	d.Register(c.api)
	c.runLoop("desk", d.Run)
	return nil
}

// storeReplacements reads a replacement request's state from the RA
// request it is; opening one waits for package token's replacement kind.
type storeReplacements struct{ st *store.Store }

func (storeReplacements) OpenReplacement(context.Context, desk.ReplacementRequest) (string, error) {
	return "", httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "USBKey replacement requests are not available in this build (package token)")
}

func (r storeReplacements) ReplacementState(ctx context.Context, id string) (string, error) {
	var state string
	err := r.st.View(ctx, func(tx *store.Tx) error {
		q, err := tx.RARequest(id)
		if err == nil {
			state = q.State
		}
		return err
	})
	return state, err
}
