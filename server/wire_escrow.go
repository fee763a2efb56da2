package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/token/escrow"
)

// wireEscrow builds the key escrow over the signer's key-encryption key
// (ra.escrow.kek_name), making the KEK on first use. Every consumer (the
// RA's encryption certificates and recoveries, the token package's USBKey
// replacement) gets the same *escrow.Escrow.
func wireEscrow(c *components) (*escrow.Escrow, error) {
	if c.escrow != nil {
		return c.escrow, nil
	}
	wp, ok := c.core.signers.(signer.Wrapping)
	if !ok {
		return nil, fmt.Errorf("signer.provider %s keeps no key-encryption keys", c.cfg.Signer.Provider)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := wp.KeyWrapper(ctx, c.cfg.RA.Escrow.KEKName)
	if err != nil {
		return nil, fmt.Errorf("ra.escrow.kek_name: %w", err)
	}
	// A round trip at start makes the file KEK on the first start and finds
	// a KEK that cannot be used (a lost token, an unreadable key file) now,
	// for /readyz, rather than at the first encryption certificate.
	probe := []byte("certcenter escrow start-up check")
	wrapped, err := w.Wrap(ctx, probe, []byte("start-up"))
	if err == nil {
		var back []byte
		if back, err = w.Unwrap(ctx, wrapped, []byte("start-up")); err == nil && string(back) != string(probe) {
			err = errors.New("the KEK does not give back what it wrapped")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ra.escrow.kek_name %s: %w", c.cfg.RA.Escrow.KEKName, err)
	}
	e, err := escrow.New(escrow.Options{Store: c.core.store, Wrapper: w, Logger: c.log})
	if err != nil {
		return nil, err
	}
	c.escrow = e
	return e, nil
}

// raEscrow is the RA's KeyEscrow over the escrow.
func raEscrow(c *components) (ra.KeyEscrow, error) {
	e, err := wireEscrow(c)
	if err != nil {
		return nil, err
	}
	return raKeys{e}, nil
}

// raKeys adapts *escrow.Escrow to ra.KeyEscrow: the two packages do not
// import each other, so the refusals are mapped here.
type raKeys struct{ e *escrow.Escrow }

func (k raKeys) Generate(ctx context.Context, serial []byte, alg signer.Algorithm, signingSerial []byte, request string) (crypto.PublicKey, error) {
	return k.e.Generate(ctx, serial, alg, signingSerial, request)
}

func (k raKeys) Paired(ctx context.Context, serial []byte) ([]byte, error) {
	s, err := k.e.Has(ctx, serial)
	return s, mapEscrowErr(err)
}

func (k raKeys) Check(ctx context.Context, serial []byte) error {
	return mapEscrowErr(k.e.Check(ctx, serial))
}

func (k raKeys) Deliver(ctx context.Context, serial []byte, format string, recipient *x509.Certificate) (*ra.KeyDelivery, error) {
	d, err := k.e.Recover(ctx, serial, escrow.DeliverTo{Format: format, Recipient: recipient})
	if err != nil {
		return nil, mapEscrowErr(err)
	}
	return &ra.KeyDelivery{ContentType: d.ContentType, Body: d.Body, Password: d.Password}, nil
}

// mappedErr keeps the escrow's message and adds the RA's sentinel.
type mappedErr struct{ err, kind error }

func (m mappedErr) Error() string   { return m.err.Error() }
func (m mappedErr) Unwrap() []error { return []error{m.err, m.kind} }

func mapEscrowErr(err error) error {
	for from, to := range map[error]error{escrow.ErrNoKey: ra.ErrNoEscrowedKey, escrow.ErrCorrupt: ra.ErrEscrowDamaged, escrow.ErrRecipient: ra.ErrRecipient} {
		if errors.Is(err, from) {
			return mappedErr{err, to}
		}
	}
	return err
}
