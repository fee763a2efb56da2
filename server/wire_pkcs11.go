package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
)

// openPKCS11 opens the HSM signer (issue: PKCS#11 signer).
func openPKCS11(ctx context.Context, cfg *config.Config, log *slog.Logger) (signer.Provider, error) {
	return nil, errors.New("signer.provider: pkcs11 is not built yet")
}
