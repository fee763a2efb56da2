package main

import (
	"fmt"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/server"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Offline administration of a stopped server's data directory"}
	var c common
	recover := &cobra.Command{
		Use:   "recover",
		Short: "Issue a new bootstrap administrator credential (server stopped; audited)",
		Long: "When every administrator credential is revoked, lost or expired, nobody can enrol anyone through the API.\n" +
			"recover opens the data directory (refused while a server runs), issues a new credential to the\n" +
			"bootstrap-admin staff member into DATA/" + bootstrap.Dir + "/ and records it in the audit log.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			operator := os.Getenv("USER")
			if u, err := user.Current(); err == nil {
				operator = u.Username
			}
			res, err := server.Recover(cmd.Context(), cfg, newLogger(cfg, os.Stderr), operator)
			if err != nil {
				return err
			}
			fmt.Printf("new administrator credential %s in %s (admin.crt, admin.key, ca.crt); %d other active administrator credentials\n",
				res.Serial, res.Dir, res.ActiveBefore)
			if res.Kept != "" {
				fmt.Printf("the credential that was there is kept as %s (and its .key)\n", res.Kept)
			}
			return nil
		},
	}
	c.register(recover)
	cmd.AddCommand(recover)
	return cmd
}
