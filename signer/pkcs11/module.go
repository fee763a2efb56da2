package pkcs11

import (
	"errors"
	"fmt"
	"io"
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
	path   string
	ctx    *pkcs11.Ctx
	native *nativeModule // the same library's function list, for batches
	refs   int           // guarded by modules.mu

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
	abs, err := realPath(path)
	if err != nil {
		return nil, err
	}

	modules.mu.Lock()
	defer modules.mu.Unlock()
	m := modules.byPath[abs]
	if m == nil {
		if m, err = loadModule(path, abs); err != nil {
			return nil, err
		}
		modules.byPath[abs] = m
	}
	if err := m.initialiseLocked(); err != nil {
		return nil, err
	}
	return m, nil
}

// realPath returns the file path names, symlinks resolved: the module table
// is keyed by the real file (/usr/lib/softhsm/libsofthsm2.so is a symlink,
// and dlopen would hand both names the same copy anyway).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("PKCS#11 module %s: %w", path, err)
	}
	return abs, nil
}

// loadModule maps the library at file (path is the name to report).
func loadModule(path, file string) (*module, error) {
	// Ours first: it reports dlopen's reason, miekg/pkcs11 does not.
	native, err := openNative(file)
	if err != nil {
		return nil, fmt.Errorf("loading PKCS#11 module %s: %w", path, err)
	}
	ctx := pkcs11.New(file)
	if ctx == nil {
		native.close()
		return nil, fmt.Errorf("loading PKCS#11 module %s: dlopen failed or the library has no C_GetFunctionList", path)
	}
	return &module{path: file, ctx: ctx, native: native}, nil
}

// openModuleCopy loads a private copy of the library at path: a second
// instance of the module in this process, with its own initialisation,
// login, sessions and locks. dlopen would return the already-loaded copy
// for the same file (it compares device and inode), so the file is copied
// to a private temporary directory first and removed once mapped.
//
// It exists because a software token such as SoftHSM2 serialises work on
// process-wide locks inside the library (its secure-memory registry, the
// token's mutex around decrypting key material): measured on two cores,
// two threads sign ≈ 1.5x one thread in one instance and ≈ 1.9x in two.
// Hardware HSM client libraries usually expect one instance per process,
// so this is opt-in (Options.ModuleInstances).
func openModuleCopy(path string) (*module, error) {
	abs, err := realPath(path)
	if err != nil {
		return nil, err
	}
	src, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: %w", path, err)
	}
	defer src.Close()
	dir, err := os.MkdirTemp("", "certcenter-pkcs11-")
	if err != nil {
		return nil, fmt.Errorf("copying PKCS#11 module %s: %w", path, err)
	}
	// The mapping outlives the file; nothing else may load or swap it in
	// between, which the 0700 directory ensures.
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, filepath.Base(abs))
	dst, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o500)
	if err == nil {
		_, err = io.Copy(dst, src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("copying PKCS#11 module %s: %w", path, err)
	}

	modules.mu.Lock()
	defer modules.mu.Unlock()
	m, err := loadModule(path, file)
	if err != nil {
		// The usual cause: a temporary directory mounted noexec.
		return nil, fmt.Errorf("%w (loading a private copy from %s; point TMPDIR at a directory that allows executables)", err, dir)
	}
	modules.byPath[file] = m
	if err := m.initialiseLocked(); err != nil {
		return nil, err
	}
	return m, nil
}

// initialiseLocked takes a reference, initialising the module if it is the
// first. Called with modules.mu held.
func (m *module) initialiseLocked() error {
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
			m.unload()
			return fmt.Errorf("initialising PKCS#11 module %s: %w", m.path, err)
		}
	}
	m.refs++
	return nil
}

// unload unmaps the library and forgets it. Called with modules.mu held.
func (m *module) unload() {
	m.native.close()
	m.ctx.Destroy()
	delete(modules.byPath, m.path)
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
	m.unload()
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
