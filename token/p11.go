package token

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// The holder's side of a PKCS#11 USBKey: what `certcenter token` runs on
// the machine the token is plugged into. Each call loads the module,
// finds the token by its serial (CK_TOKEN_INFO.serialNumber), does its
// work in one session and unloads the module again.

// ErrPINLocked is returned by Login when the token has locked the PIN.
var ErrPINLocked = errors.New("the PIN is locked")

// ErrPINIncorrect is returned by Login for a wrong PIN.
var ErrPINIncorrect = errors.New("PIN incorrect")

// Device is one PKCS#11 token, found by serial in a module.
type Device struct {
	Module string
	Serial string
}

// withSession opens a read-write session on the token and runs fn.
func (d Device) withSession(fn func(c *pkcs11.Ctx, s pkcs11.SessionHandle) error) error {
	c := pkcs11.New(d.Module)
	if c == nil {
		return fmt.Errorf("loading PKCS#11 module %s failed", d.Module)
	}
	defer c.Destroy()
	finalize := true
	if err := c.Initialize(); errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		// Someone else in this process uses the module: leave it to them.
		finalize = false
	} else if err != nil {
		return fmt.Errorf("C_Initialize of %s: %w", d.Module, err)
	}
	if finalize {
		defer c.Finalize()
	}
	slot, err := d.slot(c)
	if err != nil {
		return err
	}
	s, err := c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("opening a session on token %s: %w", d.Serial, err)
	}
	defer c.CloseSession(s)
	return fn(c, s)
}

func (d Device) slot(c *pkcs11.Ctx) (uint, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err == nil && strings.TrimSpace(ti.SerialNumber) == d.Serial {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token with serial %s in module %s", d.Serial, d.Module)
}

// Serials lists the serials of the tokens a module sees, with their labels.
func Serials(module string) (map[string]string, error) {
	c := pkcs11.New(module)
	if c == nil {
		return nil, fmt.Errorf("loading PKCS#11 module %s failed", module)
	}
	defer c.Destroy()
	if err := c.Initialize(); err == nil {
		defer c.Finalize()
	} else if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return nil, fmt.Errorf("C_Initialize of %s: %w", module, err)
	}
	slots, err := c.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("C_GetSlotList: %w", err)
	}
	out := map[string]string{}
	for _, s := range slots {
		if ti, err := c.GetTokenInfo(s); err == nil {
			out[strings.TrimSpace(ti.SerialNumber)] = strings.TrimSpace(ti.Label)
		}
	}
	return out, nil
}

func pinError(err error) error {
	switch {
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LOCKED)):
		return fmt.Errorf("%w (%v)", ErrPINLocked, err)
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)):
		return fmt.Errorf("%w (%v)", ErrPINIncorrect, err)
	}
	return err
}

// Login logs in as the user with pin and out again: it tells whether the
// PIN is right, wrong (ErrPINIncorrect) or locked (ErrPINLocked). Every
// wrong try counts against the token's retry counter.
func (d Device) Login(pin string) error {
	return d.withSession(func(c *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		if err := c.Login(s, pkcs11.CKU_USER, pin); err != nil {
			return pinError(err)
		}
		return c.Logout(s)
	})
}

// SetSOPIN replaces the SO PIN (personalisation: the transport PIN the
// token came with, then the derived one).
func (d Device) SetSOPIN(oldPIN, newPIN string) error {
	return d.withSession(func(c *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		if err := c.Login(s, pkcs11.CKU_SO, oldPIN); err != nil {
			return fmt.Errorf("logging in as SO with the transport SO PIN: %w", pinError(err))
		}
		defer c.Logout(s)
		if err := c.SetPIN(s, oldPIN, newPIN); err != nil {
			return fmt.Errorf("C_SetPIN (SO): %w", err)
		}
		return nil
	})
}

// InitUserPIN logs in as SO with soPIN and sets a new user PIN with
// C_InitPIN, which also clears the token's lock. A wrong SO PIN counts
// against the token's SO retry counter: tokens lock their SO PIN too.
func (d Device) InitUserPIN(soPIN, newPIN string) error {
	return d.withSession(func(c *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		if err := c.Login(s, pkcs11.CKU_SO, soPIN); err != nil {
			return fmt.Errorf("logging in as SO: %w", pinError(err))
		}
		defer c.Logout(s)
		if err := c.InitPIN(s, newPIN); err != nil {
			return fmt.Errorf("C_InitPIN: %w", err)
		}
		return nil
	})
}
