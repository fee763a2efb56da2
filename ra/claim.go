package ra

import (
	"context"
	"errors"
	"sync"
)

// errClaimed says another executor is carrying out the request right now.
var errClaimed = errors.New("request is being executed")

// claims lets one executor at a time carry out a request. The approval that
// completes a request, an automatic revocation and Repair may all reach
// execute for the same request; two that both passed adopt before either's
// Issue committed would issue two certificates. The store is embedded and
// Badger's directory lock keeps it to one process, so an in-process claim
// excludes every executor there is; execute re-reads the state in a
// transaction once it holds the claim, and a claim lives until Issue or
// Revoke has returned and its outcome is recorded, never on a timer that a
// slow CA could outlast.
type claims struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed on release
}

// acquire claims request id. With wait it blocks until the holder releases
// it or ctx is done; without, it returns errClaimed at once.
func (c *claims) acquire(ctx context.Context, id string, wait bool) (release func(), err error) {
	for {
		c.mu.Lock()
		done, busy := c.held[id]
		if !busy {
			if c.held == nil {
				c.held = map[string]chan struct{}{}
			}
			ch := make(chan struct{})
			c.held[id] = ch
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.held, id)
				c.mu.Unlock()
				close(ch)
			}, nil
		}
		c.mu.Unlock()
		if !wait {
			return nil, errClaimed
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
