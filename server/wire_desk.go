package server

import (
	"context"
	"errors"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/store"
)

// wireDesk mounts the service desk's API and runs its SLA clock loop. Its
// 5x8 clocks use the RA's working-day calendar; a ticket's USBKey
// replacement is opened as the RA's request (after wireRA), and agents
// search the knowledge base from a ticket (after wireKB).
func wireDesk(c *components) error {
	cal, err := ra.CalendarFrom(c.cfg.RA)
	if err != nil {
		return err
	}
	d, err := desk.New(desk.Options{
		Store: c.core.store, Audit: c.auditLog, Config: c.cfg.Desk, Calendar: cal, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
		Replacements: deskReplacements{c.ra, c.core.store},
		Articles:     deskArticles{c.kb},
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

// deskArticles searches the knowledge base for an agent on a ticket, at the
// levels the caller's role reads (a hotline agent does not see engineers'
// articles).
type deskArticles struct{ kb *kb.KB }

func (a deskArticles) Search(ctx context.Context, query, lang string, limit int) ([]desk.ArticleHit, error) {
	var levels []string
	if p, ok := httpapi.PrincipalFrom(ctx); ok && p.Staff != nil {
		levels = kb.ReaderLevels(p.Staff.Role)
	}
	if limit <= 0 {
		limit = 10
	}
	res, err := a.kb.Find(ctx, kb.Query{Text: query, Lang: lang, Levels: levels, Limit: min(limit, kb.MaxLimit)})
	var ie *kb.InputError
	if errors.As(err, &ie) {
		return nil, httpapi.BadRequest("%s", ie.Reason)
	} else if err != nil {
		return nil, err
	}
	hits := make([]desk.ArticleHit, 0, len(res.Hits))
	for _, h := range res.Hits {
		hit := desk.ArticleHit{ID: h.ID, Title: h.Title, Lang: h.Lang, Category: h.Category, Score: h.Score}
		if b := h.Highlights["body"]; len(b) > 0 {
			hit.Snippet = b[0]
		}
		hits = append(hits, hit)
	}
	return hits, nil
}
