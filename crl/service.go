package crl

import (
	"context"
	"errors"
	"time"
)

// checkEvery is how often Run looks for full or delta CRLs that are due. It
// bounds how late a scheduled CRL can be, not how soon a revocation shows:
// that is Notify's job.
const checkEvery = 30 * time.Second

// Notify asks for the delta CRLs and the full CRLs of a CA to be rebuilt
// within DeltaDelay. It is called after every committed revocation and
// returns at once. The pending set is a flag per CA, not a queue: the
// revocations of a burst share one rebuild, and all those that arrive while
// a rebuild runs (a full CRL of a million entries takes seconds) share the
// one after it, so none is left out and none costs a rebuild of its own.
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

// Run rebuilds delta and full CRLs when Notify asks, and full and delta
// CRLs when they are due, until ctx is done. Call Repair first.
func (b *Builder) Run(ctx context.Context) error {
	if b.opts.ServeOnly {
		<-ctx.Done()
		return nil
	}
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
				if err := b.revoked(ctx, name); err != nil {
					b.log.Error("CRL rebuild after revocations failed; retrying", "issuer", name, "err", err)
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

// revoked publishes a batch of revocations: first the delta CRLs, which
// cost a read of the revocations since the last full CRL (milliseconds at
// any size), then the full CRLs, which cost a read of all of them (seconds
// at a million), so that clients that ignore delta CRLs (openssl without
// -use_deltas, the JDK, NSS) see the revocation too and not only at the
// next crl.interval. The re-issue keeps the deltas' base (the last
// scheduled full CRL), so relying parties that cache a full CRL and fetch
// deltas keep using theirs; its deltas share its number.
func (b *Builder) revoked(ctx context.Context, caName string) error {
	derr := b.Delta(ctx, caName)
	if derr != nil {
		b.log.Error("delta CRL rebuild failed; building the full CRLs", "issuer", caName, "err", derr)
	}
	if err := b.Reissue(ctx, caName); err != nil {
		return errors.Join(derr, err)
	}
	return nil
}
