package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/signer/pkcs11"
)

// openPKCS11 opens the HSM signer: CA and OCSP keys live in the token and
// never in the data directory.
func openPKCS11(ctx context.Context, cfg *config.Config, log *slog.Logger) (signer.Provider, error) {
	p := cfg.Signer.PKCS11
	pin, err := p.PIN()
	if err != nil {
		return nil, err
	}
	prov, err := pkcs11.Open(ctx, pkcs11.Options{
		Module: p.Module, TokenLabel: p.TokenLabel, Slot: p.Slot, PIN: pin,
		PoolSize: p.PoolSize, ModuleInstances: p.ModuleInstances, Logger: log.With("component", "pkcs11"),
	})
	if err != nil {
		return nil, fmt.Errorf("signer.pkcs11: %w", err)
	}
	return prov, nil
}
