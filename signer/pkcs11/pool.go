package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/pkcs11"
)

// session is one PKCS#11 session handle. It is used by one goroutine at a
// time: PKCS#11 keeps the active operation (SignInit … Sign, FindObjects…)
// in the session, so two goroutines on one session would corrupt each other.
type session struct {
	h     pkcs11.SessionHandle
	gen   uint64 // module initialisation the handle belongs to
	slot  uint
	epoch uint64 // Provider.epoch when the session was last known good
	// copies maps a token key to its copy as a session object (see
	// Key.sessionKey); owned by the goroutine holding the session.
	copies map[pkcs11.ObjectHandle]pkcs11.ObjectHandle
}

const minBackoff = 100 * time.Millisecond

// maxAttempts bounds how often one call goes round "fails because the token
// went away, reopen, try again". Two would do for a single hiccup; the third
// covers a reopen that raced with a second hiccup. It never waits: when the
// reopen itself fails the call returns at once and the backoff is left to
// the next caller.
const maxAttempts = 3

// final marks an error that must not be retried even if it looks like the
// token went away (Generate after the key pair exists).
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }
func (f final) Unwrap() error { return f.err }

// do runs fn on a pooled session, reopening the token and retrying when fn
// fails because the session, the login or the token went away.
func (p *Provider) do(ctx context.Context, fn func(*session) error) error {
	if err := p.acquireSlot(ctx); err != nil {
		return err
	}
	defer p.releaseSlot()
	return p.withSession(fn)
}

// withSession is do for a caller that already holds a slot.
func (p *Provider) withSession(fn func(*session) error) error {
	var err error
	for range maxAttempts {
		var s *session
		if s, err = p.session(); err != nil {
			if gone(err) {
				continue // a new session failed the same way: reopen
			}
			return err
		}
		epoch := s.epoch // release may move s to the current epoch
		err = fn(s)
		p.release(s, err)
		if err == nil || !gone(err) || errors.As(err, new(final)) {
			return err
		}
		p.broken(epoch, err)
	}
	return err
}

// acquireSlot waits for one of the pool's size slots. At most size sessions
// exist: a caller holds a slot for as long as it holds a session, and only
// opens a new session when none is idle.
func (p *Provider) acquireSlot(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("waiting for a session: %w", ctx.Err())
	}
}

func (p *Provider) releaseSlot() { <-p.sem }

// session takes an idle session, or opens one, for a caller holding a slot.
func (p *Provider) session() (*session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if !p.ready {
		if err := p.reopenLocked(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
	}
	if n := len(p.idle); n > 0 {
		s := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return s, nil
	}
	gen, slot, epoch := p.gen, p.slot, p.epoch
	p.mu.Unlock()

	// Opened outside p.mu: it can take a while on a network HSM, and the
	// module's own login state covers the new session (login is per
	// application, not per session).
	s := &session{gen: gen, slot: slot, epoch: epoch}
	err := p.mod.use(gen, func(c *pkcs11.Ctx) (err error) {
		s.h, err = c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		return err
	})
	if err != nil {
		err = fmt.Errorf("opening session: %w", err)
		if gone(err) {
			p.broken(epoch, err)
		}
		return nil, err
	}
	return s, nil
}

// release returns s to the pool, or drops it if it cannot be trusted. The
// caller keeps its slot.
func (p *Provider) release(s *session, opErr error) {
	if errors.Is(opErr, errStale) {
		// The handle belongs to an earlier module instance; its number may
		// have been handed to somebody else since. Never touch it.
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.gen != p.gen {
		return // same reason as errStale
	}
	if gone(opErr) || s.epoch != p.epoch {
		// Either the operation said the session or login went away, or the
		// session was out on loan while the token was reopened and missed
		// that check. Ask the module; a dead handle is forgotten, not
		// closed, so a number the module reuses is never closed by us.
		if !p.sessionAlive(s) {
			return
		}
		s.epoch = p.epoch
	}
	if p.closed || s.slot != p.slot || !(benign(opErr) || gone(opErr)) {
		// Alive but unwanted, or in a state we cannot vouch for.
		p.closeSession(s)
		return
	}
	p.idle = append(p.idle, s)
}

// broken records that the token went away. The next acquire
// reopens it. epoch is when the failing session was last known good: a
// failure from before the last reopen is old news and ignored.
func (p *Provider) broken(epoch uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready || epoch != p.epoch || p.closed {
		return
	}
	p.ready = false
	p.err = err
	p.retryAt = time.Time{}
	p.backoff = minBackoff
	p.log.Warn("token unavailable, reopening", "error", err)
}

// reopenLocked makes the token usable again, at most once per backoff
// interval; between attempts callers get the last error at once instead of
// queueing on a dead token. p.mu is held throughout, so one goroutine
// reopens while the rest wait for its result.
func (p *Provider) reopenLocked() error {
	if p.fatal || time.Now().Before(p.retryAt) {
		return p.err
	}
	err := p.reopen(true)
	if err != nil {
		p.err = err
		p.fatal = errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked)
		p.retryAt = time.Now().Add(p.backoff)
		p.log.Warn("reopening token failed", "error", err, "retry_in", p.backoff, "gave_up", p.fatal)
		p.backoff = min(2*p.backoff, p.maxBackoff)
		return err
	}
	p.log.Info("token reopened", "slot", p.slot, "idle_sessions", len(p.idle))
	return nil
}

// reopen finds the token, keeps the pooled sessions the module still
// accepts, and logs in. With reload it reloads the module when the token
// cannot be found, as a removed and re-inserted token needs with many
// libraries. Called with p.mu held (or before the Provider is shared).
func (p *Provider) reopen(reload bool) error {
	gen, err := p.mod.current()
	if err != nil {
		return err
	}
	if gen != p.gen {
		// The module was initialised again: every handle we hold is from
		// the old instance. Forget them without closing (see errStale).
		p.idle = nil
		p.gen = gen
	}
	slot, err := p.findToken(gen)
	if err != nil && reload && (errors.Is(err, ErrTokenNotFound) || gone(err)) {
		p.log.Info("token not visible, reloading module", "error", err)
		if gen, err = p.mod.reinit(gen, true); err != nil {
			return err
		}
		p.idle = nil
		p.gen = gen
		slot, err = p.findToken(gen)
	}
	if err != nil {
		return err
	}
	if slot != p.slot {
		for _, s := range p.idle {
			p.closeSession(s)
		}
		p.idle = nil
		p.slot = slot
	}

	// Keep the sessions the module still accepts; after a
	// C_CloseAllSessions or a lost login some or all of them are gone.
	kept := p.idle[:0]
	for _, s := range p.idle {
		if p.sessionAlive(s) {
			kept = append(kept, s)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept

	s := &session{gen: gen, slot: slot}
	if len(p.idle) > 0 {
		s = p.idle[0]
	} else if err := p.mod.use(gen, func(c *pkcs11.Ctx) (err error) {
		s.h, err = c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		return err
	}); err != nil {
		return fmt.Errorf("opening session: %w", err)
	} else {
		p.idle = append(p.idle, s)
	}
	if err := p.login(s); err != nil {
		return err
	}
	p.epoch++
	for _, s := range p.idle {
		s.epoch = p.epoch
	}
	p.ready, p.err, p.fatal = true, nil, false
	p.backoff = minBackoff
	return nil
}

// login logs the application in once. Login state belongs to the
// application and covers every session it has on the token, so one C_Login
// serves the whole pool; "already logged in" means another session or
// Provider on this token did it.
func (p *Provider) login(s *session) error {
	err := p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
		ti, err := c.GetTokenInfo(s.slot)
		if err != nil {
			return err
		}
		// Refuse rather than try: each wrong attempt on a token whose PIN
		// is locked or on its final try brings it closer to needing the SO.
		if ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
			return ErrPINLocked
		}
		return c.Login(s.h, pkcs11.CKU_USER, p.pin)
	})
	switch {
	case err == nil, errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)):
		return nil
	case errors.Is(err, ErrPINLocked), errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LOCKED)):
		return fmt.Errorf("logging in: %w", ErrPINLocked)
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)), errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LEN_RANGE)):
		// Not retried by the reopen loop (see reopenLocked): a wrong PIN
		// tried every few seconds would lock the token.
		return fmt.Errorf("logging in: %w (%w)", ErrPINIncorrect, err)
	}
	return fmt.Errorf("logging in: %w", err)
}

// sessionAlive asks the module whether s is still a session on our slot.
func (p *Provider) sessionAlive(s *session) bool {
	return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
		info, err := c.GetSessionInfo(s.h)
		if err == nil && info.SlotID != s.slot {
			err = errStale
		}
		return err
	}) == nil
}

// closeSession closes a session we know to be ours; module.use refuses it if
// the module has been initialised again since.
func (p *Provider) closeSession(s *session) {
	_ = p.mod.use(s.gen, func(c *pkcs11.Ctx) error { return c.CloseSession(s.h) })
}

// gone reports errors after which the session, the login or the token itself
// has to be re-established.
func gone(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errStale) {
		return true
	}
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_SLOT_ID_INVALID,
		// SoftHSM2 answers GENERAL_ERROR once its token directory has been
		// deleted; for a real device it is as good a reason to reopen as any.
		pkcs11.CKR_GENERAL_ERROR:
		return true
	}
	return false
}

// benign reports errors that leave the session in a known state, so it can
// go back to the pool: Go-side errors, and PKCS#11 errors that end the
// operation without touching the session (bad input, bad key handle).
func benign(err error) bool {
	var e pkcs11.Error
	if err == nil || !errors.As(err, &e) {
		return true
	}
	switch e {
	case pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_DATA_INVALID,
		pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED,
		pkcs11.CKR_ATTRIBUTE_SENSITIVE, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID,
		pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT,
		pkcs11.CKR_TEMPLATE_INCOMPLETE, pkcs11.CKR_ATTRIBUTE_READ_ONLY:
		return true
	}
	return false
}
