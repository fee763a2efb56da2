// Package pkcs11 keeps CA keys in a PKCS#11 token (an HSM in production,
// SoftHSM2 in tests) and signs with them through crypto.Signer.
//
// It owns everything between the signer.Provider interface and the PKCS#11
// library: loading and initialising the module once per process, finding the
// token by label or slot, one login per token, a bounded pool of sessions
// (a session is never used by two goroutines at once), key generation inside
// the token (private keys are CKA_SENSITIVE, non-extractable and CKA_PRIVATE,
// so they never leave it), finding keys by CKA_LABEL (the Provider's key name)
// or CKA_ID, and the signature mechanisms: RSA PKCS#1 v1.5 and PSS with
// SHA-256/384/512, and ECDSA P-256/P-384, whose raw r||s it re-encodes as the
// ASN.1 DER that crypto.Signer callers expect.
//
// It also owns staying up: when the token goes away underneath (sessions
// closed, login lost, device removed, module finalised or token re-created)
// the Provider drops the sessions the module no longer accepts, reopens and
// logs in again with exponential backoff, and keeps serving; Healthy reports
// whether it can sign in the meantime.
//
// A PKCS#11 library keeps its state per process, so a module is initialised
// once per process and shared by every Provider that names it; the last
// Close finalises it (module.go says why that needs the package's one piece
// of shared state). Sessions are pooled per Provider: at most
// Options.PoolSize, never more than the token allows, one login for all.
//
// It does not own the PIN's storage (config reads it from the environment or
// a file and passes it in), token initialisation (an operator's job, with
// softhsm2-util or the vendor's tools), key backup, or deciding which key
// signs what (package ca).
package pkcs11

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

// Errors of the Provider; match them with errors.Is. The first three need an
// operator. Key lookups fail with signer.ErrKeyNotFound and Generate with
// signer.ErrKeyExists.
var (
	ErrTokenNotFound = errors.New("token not found")
	ErrPINIncorrect  = errors.New("PIN incorrect")
	ErrPINLocked     = errors.New("user PIN locked (the security officer must reset it)")
	ErrClosed        = errors.New("provider closed")
)

// DefaultPoolSize is the number of sessions when Options.PoolSize is 0: more
// than the cores of a typical signer host, so an HSM that signs in parallel
// is kept busy, and few enough for tokens that allow only a handful.
const DefaultPoolSize = 8

// Options configure a Provider.
type Options struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so. Required.
	Module string
	// TokenLabel selects the token by its label. One of TokenLabel and Slot is
	// required; with both, the token in Slot must carry TokenLabel. A label
	// survives re-initialisation and slot renumbering, a slot ID may not.
	TokenLabel string
	// Slot selects the token by slot ID.
	Slot *uint
	// PIN is the user PIN. Required. The caller passes it (config reads it
	// from the environment or a file, never from the YAML). A PIN the token
	// refused is never tried again by the reopen loop, so a wrong or changed
	// PIN cannot lock the token; the Provider reports it until restarted.
	PIN string
	// PoolSize is the most sessions the Provider opens, and so the most
	// signatures in flight at once. Default DefaultPoolSize; never more than
	// the token's MaxRwSessionCount.
	PoolSize int
	// ModuleInstances loads the module this many times, each a private copy
	// of the library with its own initialisation, login, sessions and
	// locks, and splits PoolSize between them. Default 1. Raise it (to the
	// number of cores) for a software token such as SoftHSM2, which
	// serialises signing on process-wide locks: on two cores SoftHSM2 signs
	// ≈ 1.5x faster from two threads in one instance, ≈ 1.9x in two.
	// Leave it at 1 for hardware HSMs, whose client libraries expect to be
	// loaded once per process. Keys are generated through the first
	// instance only. The MaxRwSessionCount cap applies to each instance's
	// share.
	ModuleInstances int
	// MaxBackoff caps the wait between attempts to reopen a token that went
	// away. Default 10s.
	MaxBackoff time.Duration
	// Logger receives reopen and pool events. Default: discard.
	Logger *slog.Logger
}

// Provider is a signer.Provider over one PKCS#11 token. It is safe for
// concurrent use, as are the Keys it returns.
type Provider struct {
	mod        *module
	log        *slog.Logger
	desc       string // names module and token in every error
	label      string
	slotOpt    *uint
	pin        string
	maxBackoff time.Duration

	sem  chan struct{} // one slot per session on loan; cap is the pool size
	done chan struct{} // closed by Close, wakes callers waiting for a session

	// genMu makes "no key has this label" and "create it" one step, so two
	// concurrent Generate calls cannot both create a key under one name.
	genMu sync.Mutex

	mu      sync.Mutex // guards the fields below, and is held while reopening
	idle    []*session
	gen     uint64 // module initialisation our sessions belong to
	slot    uint
	epoch   uint64 // bumped by every successful reopen
	ready   bool   // logged in with a usable session; false: reopen on next use
	err     error  // why not ready
	fatal   bool   // err needs an operator (wrong or locked PIN): do not retry
	retryAt time.Time
	backoff time.Duration
	closed  bool
	probe   *Key // last key handed out; Healthy test-signs with it

	// peers are the Providers over the other module instances
	// (Options.ModuleInstances), set on the first instance only.
	peers []*Provider
}

var _ signer.Provider = (*Provider)(nil)

// Open loads the module, finds the token and logs in. Errors name the module
// and token, and say which of them is wrong: ErrTokenNotFound,
// ErrPINIncorrect, ErrPINLocked.
func Open(ctx context.Context, opts Options) (*Provider, error) {
	switch {
	case opts.Module == "":
		return nil, errors.New("pkcs11: no module path")
	case opts.TokenLabel == "" && opts.Slot == nil:
		return nil, errors.New("pkcs11: neither a token label nor a slot")
	case opts.PIN == "":
		return nil, errors.New("pkcs11: no PIN")
	case opts.PoolSize < 0:
		return nil, fmt.Errorf("pkcs11: pool size %d", opts.PoolSize)
	case opts.ModuleInstances < 0 || opts.ModuleInstances > 64:
		return nil, fmt.Errorf("pkcs11: %d module instances (1 to 64)", opts.ModuleInstances)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = DefaultPoolSize
	}
	instances := max(1, opts.ModuleInstances)
	pool := opts.PoolSize
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	desc := fmt.Sprintf("pkcs11 token %q (module %s)", opts.TokenLabel, opts.Module)
	if opts.TokenLabel == "" {
		desc = fmt.Sprintf("pkcs11 slot %d (module %s)", *opts.Slot, opts.Module)
	}
	// The pool is shared out between the instances, the first ones taking
	// the remainder; every instance has at least one session.
	share := func(i int) Options {
		o := opts
		o.PoolSize = pool / instances
		if i < pool%instances {
			o.PoolSize++
		}
		o.PoolSize = max(1, o.PoolSize)
		return o
	}
	p, err := openInstance(share(0), desc, 0)
	if err != nil {
		return nil, err
	}
	for i := 1; i < instances; i++ {
		peer, err := openInstance(share(i), desc, i)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.peers = append(p.peers, peer)
	}
	return p, nil
}

// openInstance opens the Provider over module instance i: the shared
// module for 0, a private copy for the others.
func openInstance(opts Options, desc string, i int) (*Provider, error) {
	open := openModule
	if i > 0 {
		open = openModuleCopy
		desc = fmt.Sprintf("%s instance %d", desc, i)
	}
	mod, err := open(opts.Module)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	p := &Provider{
		mod:        mod,
		log:        opts.Logger.With("component", "signer/pkcs11", "module", opts.Module, "token", opts.TokenLabel, "instance", i),
		desc:       desc,
		label:      opts.TokenLabel,
		slotOpt:    opts.Slot,
		pin:        opts.PIN,
		maxBackoff: opts.MaxBackoff,
		done:       make(chan struct{}),
		backoff:    minBackoff,
	}
	size, err := p.poolSize(opts.PoolSize)
	if err == nil {
		p.sem = make(chan struct{}, size)
		// No reload at start: a token that is not there is a configuration
		// error to report, not a reason to disturb other users of the module.
		err = p.reopen(false)
	}
	if err != nil {
		p.mu.Lock()
		for _, s := range p.idle {
			p.closeSession(s)
		}
		p.mu.Unlock()
		mod.close()
		return nil, fmt.Errorf("%s: %w", p.desc, err)
	}
	p.log.Info("token opened", "slot", p.slot, "pool_size", size)
	return p, nil
}

// poolSize caps the configured size at what the token allows.
func (p *Provider) poolSize(want int) (int, error) {
	gen, err := p.mod.current()
	if err != nil {
		return 0, err
	}
	slot, err := p.findToken(gen)
	if err != nil {
		return 0, err
	}
	var ti pkcs11.TokenInfo
	if err := p.mod.use(gen, func(c *pkcs11.Ctx) (err error) {
		ti, err = c.GetTokenInfo(slot)
		return err
	}); err != nil {
		return 0, fmt.Errorf("reading token info: %w", err)
	}
	size := capPoolSize(want, ti.MaxRwSessionCount)
	if size != want {
		p.log.Info("pool size capped by the token", "want", want, "max_rw_sessions", ti.MaxRwSessionCount)
	}
	return size, nil
}

// capPoolSize limits want to the token's MaxRwSessionCount. 0 is
// CK_EFFECTIVELY_INFINITE and all ones CK_UNAVAILABLE_INFORMATION: no limit.
func capPoolSize(want int, maxRW uint) int {
	if maxRW == pkcs11.CK_EFFECTIVELY_INFINITE || maxRW == pkcs11.CK_UNAVAILABLE_INFORMATION || uint(want) <= maxRW {
		return want
	}
	return int(maxRW)
}

// findToken returns the slot of our token in module generation gen.
func (p *Provider) findToken(gen uint64) (uint, error) {
	var slot uint
	err := p.mod.use(gen, func(c *pkcs11.Ctx) error {
		if p.slotOpt != nil {
			ti, err := c.GetTokenInfo(*p.slotOpt)
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_SLOT_ID_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)) {
				return fmt.Errorf("%w in slot %d (%w)", ErrTokenNotFound, *p.slotOpt, err)
			}
			if err != nil {
				return fmt.Errorf("reading token info of slot %d: %w", *p.slotOpt, err)
			}
			if p.label != "" && ti.Label != p.label {
				return fmt.Errorf("%w: slot %d holds token %q", ErrTokenNotFound, *p.slotOpt, ti.Label)
			}
			slot = *p.slotOpt
			return checkToken(ti)
		}
		slots, err := c.GetSlotList(true)
		if err != nil {
			return fmt.Errorf("listing slots: %w", err)
		}
		var found []uint
		var seen []string
		var match pkcs11.TokenInfo
		for _, s := range slots {
			ti, err := c.GetTokenInfo(s)
			if err != nil {
				continue // a token being pulled out; the others still count
			}
			if ti.Label == p.label {
				found = append(found, s)
				match = ti
			} else if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
				seen = append(seen, fmt.Sprintf("%q in slot %d", ti.Label, s))
			}
		}
		switch len(found) {
		case 0:
			if len(seen) == 0 {
				return fmt.Errorf("%w (the module shows no initialised token)", ErrTokenNotFound)
			}
			return fmt.Errorf("%w (tokens present: %s)", ErrTokenNotFound, strings.Join(seen, ", "))
		case 1:
			slot = found[0]
			return checkToken(match)
		}
		return fmt.Errorf("%d tokens carry this label (slots %v): configure the slot", len(found), found)
	})
	return slot, err
}

func checkToken(ti pkcs11.TokenInfo) error {
	switch {
	case ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0:
		return fmt.Errorf("%w: token is not initialised", ErrTokenNotFound)
	case ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0:
		return errors.New("token has no user PIN (the security officer must set one)")
	case ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0:
		return ErrPINLocked
	}
	return nil
}

// Generate creates a key pair in the token under name (CKA_LABEL) and
// returns its signer. The private key is CKA_TOKEN, CKA_PRIVATE,
// CKA_SENSITIVE and not CKA_EXTRACTABLE; CKA_ID is the SHA-1 of the public
// key bits, which is also the subject key identifier ca puts in the
// certificate, so an operator can match token objects to certificates.
func (p *Provider) Generate(ctx context.Context, name string, alg signer.Algorithm) (crypto.Signer, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", p.desc, name, err)
	}
	tmpl, err := newKeyTemplate(name, alg)
	if err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", p.desc, name, err)
	}
	p.genMu.Lock()
	defer p.genMu.Unlock()
	var k *Key
	err = p.do(ctx, func(s *session) (err error) {
		k, err = p.generate(s, name, alg, tmpl)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: generating key %q (%s): %w", p.desc, name, alg, err)
	}
	p.log.Info("key generated", "key", name, "algorithm", alg, "id", fmt.Sprintf("%x", k.id))
	p.setProbe(k)
	if err := p.attachPeers(ctx, k, name); err != nil {
		return nil, err
	}
	return k, nil
}

// Signer finds the private key labelled name and returns its signer. A name
// of the form "id:<hex>" finds the key by CKA_ID instead, for keys made by
// other tools.
func (p *Provider) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	if name == "" {
		return nil, fmt.Errorf("%s: empty key name", p.desc)
	}
	var k *Key
	err := p.do(ctx, func(s *session) (err error) {
		k, err = p.loadKey(s, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", p.desc, name, err)
	}
	p.setProbe(k)
	if err := p.attachPeers(ctx, k, name); err != nil {
		return nil, err
	}
	return k, nil
}

// attachPeers finds k, named name, in every other module instance.
func (p *Provider) attachPeers(ctx context.Context, k *Key, name string) error {
	for _, peer := range p.peers {
		s, err := peer.Signer(ctx, name)
		if err != nil {
			return err
		}
		pk := s.(*Key)
		if !pk.pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.pub) {
			return fmt.Errorf("%s: key %q: another module instance finds a different key under this name", peer.desc, name)
		}
		k.peers = append(k.peers, pk)
	}
	return nil
}

func (p *Provider) setProbe(k *Key) {
	p.mu.Lock()
	p.probe = k
	p.mu.Unlock()
}

// healthDigest is what Healthy signs: a fixed SHA-256-sized value, so the
// probe exercises the same mechanism as real signatures.
var healthDigest = make([]byte, 32)

// Healthy reports whether the Provider can sign now: the token is present
// under its label, the session is logged in, and, once a key has been handed
// out, a test signature with it succeeds. It reopens the token if needed
// (within the backoff), so /readyz turns green again by itself.
func (p *Provider) Healthy(ctx context.Context) error {
	// Every instance is checked, also after a failure, so each one reopens
	// by itself while /readyz polls.
	err := p.healthyInstance(ctx)
	for _, peer := range p.peers {
		if perr := peer.healthyInstance(ctx); err == nil {
			err = perr
		}
	}
	return err
}

func (p *Provider) healthyInstance(ctx context.Context) error {
	err := p.do(ctx, func(s *session) error {
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			ti, err := c.GetTokenInfo(s.slot)
			if err != nil {
				return fmt.Errorf("reading token info: %w", err)
			}
			if p.label != "" && ti.Label != p.label {
				// The slot now holds another token: reopen finds ours again.
				return fmt.Errorf("slot %d holds token %q: %w", s.slot, ti.Label, pkcs11.Error(pkcs11.CKR_TOKEN_NOT_RECOGNIZED))
			}
			info, err := c.GetSessionInfo(s.h)
			if err != nil {
				return fmt.Errorf("checking session: %w", err)
			}
			if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
				return fmt.Errorf("session state %d: %w", info.State, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	p.mu.Lock()
	k := p.probe
	p.mu.Unlock()
	if k != nil {
		// Through this instance only: each instance checks its own key.
		mech, input, _ := k.mechanism(healthDigest, crypto.SHA256)
		if _, err := k.signAlone(ctx, mech, input); err != nil {
			return fmt.Errorf("%s: test signature: %w", p.desc, err)
		}
	}
	return nil
}

// Close waits for signatures in flight, closes the sessions and, if no other
// Provider uses the module, finalises it. It does not call C_Logout: login
// state is shared by every session of the process on this token, so logging
// out would log out other Providers too; closing our sessions ends our part.
func (p *Provider) Close() error {
	var errs []error
	for _, peer := range p.peers {
		errs = append(errs, peer.Close())
	}
	return errors.Join(append(errs, p.closeInstance())...)
}

func (p *Provider) closeInstance() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	// Filling the semaphore waits until every session on loan is back.
	for range cap(p.sem) {
		p.sem <- struct{}{}
	}
	p.mu.Lock()
	for _, s := range p.idle {
		p.closeSession(s)
	}
	p.idle = nil
	p.ready = false
	p.mu.Unlock()
	if err := p.mod.close(); err != nil {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	return nil
}
