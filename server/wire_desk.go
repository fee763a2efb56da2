package server

import (
	"context"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/store"
)

// wireDesk mounts the service desk's API and runs its SLA clock loop. Its
// 5x8 clocks use the RA's working-day calendar; a ticket's USBKey
// replacement is opened as the RA's request (after wireRA). The knowledge
// base (desk.Options.Articles, package desk/kb) is filled here when that
// package is merged; until then its route answers 501.
func wireDesk(c *components) error {
	cal, err := ra.CalendarFrom(c.cfg.RA)
	if err != nil {
		return err
	}
	d, err := desk.New(desk.Options{
		Store: c.core.store, Audit: c.auditLog, Config: c.cfg.Desk, Calendar: cal, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
		Replacements: deskReplacements{c.ra, c.core.store},
	})
	if err != nil {
		return err
	}
	d.Register(c.api)
	c.runLoop("desk", d.Run)
	return nil
}

// deskReplacements opens a ticket's USBKey replacement as the RA's
// token_replace request, submitted by the support engineer who confirmed
// it, and reads its state from the RA request.
type deskReplacements struct {
	ra *ra.RA
	st *store.Store
}

func (r deskReplacements) OpenReplacement(ctx context.Context, q desk.ReplacementRequest) (string, error) {
	rq, err := r.ra.SubmitReplace(ctx, q.Principal, ra.ReplaceRequest{TokenSerial: q.Token, NewTokenSerial: q.NewToken,
		Cause: q.Cause, CSR: q.CSR, Comment: "ticket " + q.Ticket + ": " + q.Reason})
	if err != nil {
		return "", err
	}
	return rq.ID, nil
}

func (r deskReplacements) ReplacementState(ctx context.Context, id string) (string, error) {
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
