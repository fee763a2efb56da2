package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// A PKCS#11 library keeps its state per process, not per handle: dlopen
// returns the one loaded copy of the module to every caller, and
// C_Initialize, C_Finalize, C_Login and C_CloseAllSessions act on that copy
// for everybody in the process. Two Providers over the same module (two
// tokens of one HSM, or a test that opens the token twice) therefore have to
// share a single initialisation, and only the last one to close may call
// C_Finalize, or it would pull the module out from under the other.
//
// That sharing cannot live in one Provider value, so this table is the
// package's only mutable package-level state. It mirrors state the C library
// already holds per process; it adds none of its own.
var modules = moduleTable{byPath: map[string]*module{}}

type moduleTable struct {
	mu     sync.Mutex
	byPath map[string]*module
}

// errStale reports a session or object handle that belongs to an earlier
// initialisation of the module. The number may since have been handed out
// again (to another goroutine or Provider), so it must be neither used nor
// closed; callers treat it like CKR_SESSION_HANDLE_INVALID.
var errStale = errors.New("handle from an earlier initialisation of the module")

// module is one loaded PKCS#11 library, shared by every Provider that named
// the same file.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int // guarded by modules.mu

	// mu is held for reading around every call that takes a session or
	// object handle, and for writing around C_Initialize and C_Finalize.
	// With gen it guarantees that a handle is only ever passed to the
	// module instance that issued it.
	mu  sync.RWMutex
	gen uint64 // bumped on every successful C_Initialize
}

// openModule loads the library at path (once per process) and initialises it
// if no Provider holds it yet.
func openModule(path string) (*module, error) {
	abs, err := filepath.Abs(path)
	if err == nil {
		// Key the table by the real file: /usr/lib/softhsm/libsofthsm2.so is a
		// symlink, and dlopen would hand both names the same copy anyway.
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: %w", path, err)
	}

	modules.mu.Lock()
	defer modules.mu.Unlock()
	m := modules.byPath[abs]
	if m == nil {
		ctx := pkcs11.New(abs)
		if ctx == nil {
			return nil, fmt.Errorf("loading PKCS#11 module %s: dlopen failed or the library has no C_GetFunctionList", path)
		}
		m = &module{path: abs, ctx: ctx}
		modules.byPath[abs] = m
	}
	if m.refs == 0 {
		m.mu.Lock()
		err := m.ctx.Initialize()
		if err == nil || errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			// ALREADY_INITIALIZED: another library in this process (not a
			// Provider) initialised it first; its state is usable as is.
			m.gen++
			err = nil
		}
		m.mu.Unlock()
		if err != nil {
			m.ctx.Destroy()
			delete(modules.byPath, abs)
			return nil, fmt.Errorf("initialising PKCS#11 module %s: %w", path, err)
		}
	}
	m.refs++
	return m, nil
}

// close drops one reference; the last one finalises and unloads the library.
func (m *module) close() error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	m.mu.Lock()
	err := m.ctx.Finalize()
	m.gen++
	m.mu.Unlock()
	m.ctx.Destroy()
	delete(modules.byPath, m.path)
	if err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)) {
		return fmt.Errorf("finalising PKCS#11 module %s: %w", m.path, err)
	}
	return nil
}

// use runs f with the module if gen is still the current initialisation.
func (m *module) use(gen uint64, f func(*pkcs11.Ctx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.gen != gen {
		return errStale
	}
	return f(m.ctx)
}

// current returns the current generation, re-initialising the module first
// if somebody finalised it underneath (CKR_CRYPTOKI_NOT_INITIALIZED).
func (m *module) current() (uint64, error) {
	m.mu.RLock()
	gen := m.gen
	_, err := m.ctx.GetInfo()
	m.mu.RUnlock()
	if err == nil {
		return gen, nil
	}
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)) {
		return gen, fmt.Errorf("PKCS#11 module %s: C_GetInfo: %w", m.path, err)
	}
	return m.reinit(gen, false)
}

// reinit initialises the module again, after finalising it if reload is set.
// seen is the generation the caller found broken: if another Provider has
// re-initialised since, its work is reused rather than undone.
//
// reload exists because many libraries (SoftHSM2 among them, and several
// network HSM clients) scan for tokens only in C_Initialize, so a token that
// was removed and re-created stays invisible until the module is reloaded.
// It costs other Providers on the same module their sessions; they notice by
// the generation change and reopen.
func (m *module) reinit(seen uint64, reload bool) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != seen {
		return m.gen, nil
	}
	if reload {
		_ = m.ctx.Finalize() // NOT_INITIALIZED is fine: we want it fresh either way
	}
	err := m.ctx.Initialize()
	if err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return m.gen, fmt.Errorf("initialising PKCS#11 module %s: %w", m.path, err)
	}
	m.gen++
	return m.gen, nil
}
