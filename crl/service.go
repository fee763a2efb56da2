package crl

import (
	"context"
	"time"
)

// checkEvery is how often Run looks for full or delta CRLs that are due. It
// bounds how late a scheduled CRL can be, not how soon a revocation shows:
// that is Notify's job.
const checkEvery = 30 * time.Second

// Notify asks for the delta CRLs of a CA to be rebuilt within DeltaDelay.
// It is called after every committed revocation and returns at once; the
// revocations of a burst share one rebuild. A revocation that arrives while
// a rebuild runs gets another one, so none is left out.
func (b *Builder) Notify(caName string) {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	b.pending[caName] = true
	if b.timer == nil {
		b.timer = time.AfterFunc(b.opts.DeltaDelay, func() {
			select {
			case b.kick <- struct{}{}:
			default:
			}
		})
	}
}

func (b *Builder) takePending() []string {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	var out []string
	for name := range b.pending {
		out = append(out, name)
	}
	clear(b.pending)
	b.timer = nil
	return out
}

// Run rebuilds delta CRLs when Notify asks, and full and delta CRLs when they
// are due, until ctx is done. Call Repair first.
func (b *Builder) Run(ctx context.Context) error {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.pendMu.Lock()
			if b.timer != nil {
				b.timer.Stop()
			}
			b.pendMu.Unlock()
			return nil
		case <-b.kick:
			for _, name := range b.takePending() {
				if err := b.Delta(ctx, name); err != nil {
					b.log.Error("delta CRL rebuild failed; retrying", "issuer", name, "err", err)
					if ctx.Err() == nil {
						b.Notify(name)
					}
				}
			}
		case <-t.C:
			if err := b.Maintain(ctx); err != nil {
				b.log.Error("scheduled CRL rebuild failed; retrying at the next check", "err", err)
			}
		}
	}
}

// Maintain rebuilds what is due now: the full CRLs of a CA every Interval
// (and whatever Repair would rebuild), its delta CRLs when half their
// validity has passed.
func (b *Builder) Maintain(ctx context.Context) error {
	return b.Repair(ctx)
}
