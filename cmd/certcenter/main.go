// Command certcenter runs the certcenter server and its maintenance and
// client commands. It parses flags, loads the config and calls into server;
// everything else lives in the packages.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/server"
	"github.com/certcenter/certcenter/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := rootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "certcenter: "+oneLine(err))
		os.Exit(1)
	}
}

// oneLine keeps an error to one line, as operators grep for it.
func oneLine(err error) string {
	if errors.Is(err, store.ErrInUse) {
		return err.Error() + " (stop the running server first, or use the API)"
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// common flags shared by the subcommands that open a data directory.
type common struct {
	configPath string
	dataDir    string
}

func (c *common) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.configPath, "config", "", "YAML config file (default: built-in defaults)")
	cmd.Flags().StringVar(&c.dataDir, "data", "", "data directory (default ./data, or data_dir from the config)")
}

func (c *common) load() (*config.Config, error) {
	cfg := config.Default()
	if c.configPath != "" {
		var err error
		if cfg, err = config.Load(c.configPath); err != nil {
			return nil, err
		}
	}
	if c.dataDir != "" {
		cfg.DataDir = c.dataDir
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "certcenter",
		Short:         "Certificate authority service platform: LDAP directory, OCSP, CRLs, RA and admin API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), initCmd(), seedCmd(), backupCmd(), restoreCmd(), versionCmd(), certCmd(), raCmd(), auditCmd(), adminCmd(), orgCmd(), staffCmd(), diagCmd(), publishCmd(), ldapAccountCmd(), ticketCmd(), tokenCmd(), kbCmd())
	return root
}

func serveCmd() *cobra.Command {
	var c common
	var httpAddr, ldapAddr, ldapsAddr, apiAddr, role string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (an empty data directory gets a demo CA and a bootstrap administrator)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			for flag, dst := range map[string]*string{"http-addr": &cfg.HTTP.Addr, "ldap-addr": &cfg.LDAP.Addr, "ldaps-addr": &cfg.LDAP.LDAPSAddr, "api-addr": &cfg.API.Addr, "role": &cfg.Replica.Role} {
				if f := cmd.Flags().Lookup(flag); f.Changed {
					*dst = f.Value.String()
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return server.Run(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
		},
	}
	c.register(cmd)
	cmd.Flags().StringVar(&role, "role", "", "primary (publishes the change log to NATS) or replica (read-only OCSP, CRLs, LDAP from the stream); default replica.role, \"\" is the all-in-one server")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "public HTTP listen address (OCSP, CRLs, health; default :8080)")
	cmd.Flags().StringVar(&ldapAddr, "ldap-addr", "", "LDAP and StartTLS listen address (default :1389; empty disables)")
	cmd.Flags().StringVar(&ldapsAddr, "ldaps-addr", "", "LDAPS listen address (default :1636; empty disables)")
	cmd.Flags().StringVar(&apiAddr, "api-addr", "", "HTTPS API listen address (default :8443)")
	return cmd
}

func initCmd() *cobra.Command {
	var c common
	var alg, name, signerName, module, token, pinEnv string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the CA, its OCSP responder, the API TLS certificate and the bootstrap administrator",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			set := func(flag string, dst *string, v string) {
				if cmd.Flags().Lookup(flag).Changed {
					*dst = v
				}
			}
			set("key-algorithm", &cfg.CA.KeyAlgorithm, alg)
			set("ca-name", &cfg.CA.Name, name)
			set("signer", &cfg.Signer.Provider, signerName)
			set("pkcs11-module", &cfg.Signer.PKCS11.Module, module)
			set("pkcs11-token", &cfg.Signer.PKCS11.TokenLabel, token)
			set("pkcs11-pin-env", &cfg.Signer.PKCS11.PINEnv, pinEnv)
			if err := cfg.Validate(); err != nil {
				return err
			}
			return server.Init(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
		},
	}
	c.register(cmd)
	cmd.Flags().StringVar(&alg, "key-algorithm", "", "CA key: ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	cmd.Flags().StringVar(&name, "ca-name", "", "CA short name used in URLs (default demo)")
	cmd.Flags().StringVar(&signerName, "signer", "", "where CA keys live: file (default) or pkcs11")
	cmd.Flags().StringVar(&module, "pkcs11-module", "", "PKCS#11 module path")
	cmd.Flags().StringVar(&token, "pkcs11-token", "", "PKCS#11 token label")
	cmd.Flags().StringVar(&pinEnv, "pkcs11-pin-env", "", "environment variable holding the token PIN (default CERTCENTER_PKCS11_PIN)")
	return cmd
}

func seedCmd() *cobra.Command {
	var c common
	var count int
	var fraction float64
	var api apiClient
	var batch int
	var startProfile func() (func(), error)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Add synthetic subscribers seed-0000000, seed-0000001, ... with certificates (server stopped, or --server with api.seed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if api.server != "" {
				api.dataDir = cmp.Or(c.dataDir, "./data")
				res, err := seedOverAPI(cmd.Context(), &api, count, batch, fraction, os.Stderr)
				if err != nil {
					return err
				}
				fmt.Printf("seeded %d subscribers (%s .. %s), %d revoked, through %s, in %s\n",
					res.Subscribers, res.First, res.Last, res.Revoked, api.server, (time.Duration(res.ElapsedMS) * time.Millisecond).Round(time.Millisecond))
				return nil
			}
			cfg, err := c.load()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg, os.Stderr)
			quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			stopProfile, err := startProfile()
			if err != nil {
				return err
			}
			defer stopProfile()
			last := time.Now()
			res, err := server.Seed(cmd.Context(), cfg, quiet, seed.Options{
				Count: count, RevokedFraction: fraction,
				Progress: func(done int) {
					if time.Since(last) > 5*time.Second {
						last = time.Now()
						log.Info("seeding", "done", done, "of", count)
					}
				},
			})
			if err != nil {
				return seedInUse(err)
			}
			fmt.Printf("seeded %d subscribers (%s .. %s), %d revoked, %d OCSP responses pre-signed, CRLs built in %s, in %s\n",
				res.Subscribers, res.First, res.Last, res.Revoked, res.OCSPSigned, res.CRLs.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().IntVar(&count, "count", 1000, "subscribers to add")
	cmd.Flags().Float64Var(&fraction, "revoked-fraction", 0, "fraction of the new certificates to revoke (0..1)")
	registerSeedAPIFlags(cmd, &api, &batch)
	startProfile = registerSeedProfileFlag(cmd)
	return cmd
}

func backupCmd() *cobra.Command {
	var c common
	var out string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write a backup (store and key files) of a stopped server's data directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			log := newLogger(cfg, os.Stderr)
			if out == "-" {
				return server.Backup(cmd.Context(), cfg, log, os.Stdout)
			}
			tmp := out + ".partial"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("creating %s: %w", out, err)
			}
			err = server.Backup(cmd.Context(), cfg, log, f)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, out)
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			fmt.Printf("backup written to %s\n", out)
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "certcenter-backup.tar.gz", "backup file (- for standard output)")
	return cmd
}

func restoreCmd() *cobra.Command {
	var c common
	var in string
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into a new data directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			r := io.Reader(os.Stdin)
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("opening backup: %w", err)
				}
				defer f.Close()
				r = f
			}
			counts, err := server.Restore(cmd.Context(), cfg, newLogger(cfg, os.Stderr), r)
			if err != nil {
				return err
			}
			fmt.Printf("restored into %s: %d CAs, %d certificates (%d revoked), %d subscribers, %d staff\n",
				cfg.DataDir, counts.CAs, counts.Certs, counts.Revoked, counts.Subscribers, counts.Staff)
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().StringVarP(&in, "in", "i", "certcenter-backup.tar.gz", "backup file (- for standard input)")
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Println("certcenter", server.Version) },
	}
}
