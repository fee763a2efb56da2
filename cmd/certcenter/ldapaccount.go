package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/admin"
)

// ldapAccountCmd manages the directory accounts of health information
// systems (SPEC Art. 14) through the admin API.
func ldapAccountCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "ldap-account", Short: "Directory accounts of health information systems: list, add, set-cert, revoke (CA operator credential)"}
	c.register(cmd)

	list := &cobra.Command{
		Use: "list", Short: "List directory accounts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Accounts []admin.LDAPAccountView }
			if err := c.do("GET", "/api/v1/ldap/accounts", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tEXPIRES\tORGS\tDN\tAUTH\tAPPROVED BY")
			for _, a := range out.Accounts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.ExpiresAt.Format(time.DateOnly), strings.Join(a.Orgs, ","), a.DN, strings.Join(a.Auth, "+"), a.ApprovedBy)
			}
			return tw.Flush()
		},
	}
	var r admin.LDAPAccountRequest
	var passwordEnv, certFile string
	add := &cobra.Command{
		Use:   "add ID --dn DN --org ORG [--org ORG] --valid-days N [--client-cert FILE]",
		Short: "Create a directory account; prints the generated password once (none with --client-cert: it binds with SASL EXTERNAL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.ID = args[0]
			if passwordEnv != "" {
				if r.Password = os.Getenv(passwordEnv); r.Password == "" {
					return fmt.Errorf("--password-env: %s is empty", passwordEnv)
				}
			}
			if certFile != "" {
				b, err := os.ReadFile(certFile)
				if err != nil {
					return fmt.Errorf("--client-cert: %w", err)
				}
				r.ClientCert = string(b)
			}
			var v admin.LDAPAccountView
			if err := c.do("POST", "/api/v1/ldap/accounts", r, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "directory account %s binds as %s until %s, reading %s\n", v.ID, v.DN, v.ExpiresAt.Format(time.RFC3339), strings.Join(v.Orgs, ", "))
			if v.Password != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "password (shown once): %s\n", v.Password)
			}
			if v.ClientCertKey != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "binds with SASL EXTERNAL and the client certificate %s (key %s)\n", v.ClientCertSubject, v.ClientCertKey)
			}
			return nil
		},
	}
	add.Flags().StringVar(&r.DN, "dn", "", "bind DN (required)")
	add.Flags().StringSliceVar(&r.Orgs, "org", nil, "RA organisation ID whose people it reads (repeatable; required)")
	add.Flags().IntVar(&r.ValidDays, "valid-days", 365, "days until it expires")
	add.Flags().BoolVar(&r.AllAttributes, "all-attributes", false, "return every published attribute, not only ldap.public_attributes")
	add.Flags().IntVar(&r.SizeLimit, "size-limit", 0, "most entries per search (0: the server's)")
	add.Flags().IntVar(&r.TimeLimitSeconds, "time-limit", 0, "longest search in seconds (0: the server's)")
	add.Flags().StringVar(&passwordEnv, "password-env", "", "environment variable holding the password (default: one is generated)")
	add.Flags().StringVar(&certFile, "client-cert", "", "PEM client certificate the system binds with (SASL EXTERNAL over TLS)")
	add.Flags().StringVar(&r.ClientCertKey, "client-cert-key", "", "instead of --client-cert: hex SHA-256 of the certificate's SubjectPublicKeyInfo")
	add.MarkFlagRequired("dn")
	add.MarkFlagRequired("org")
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a directory account: its next bind fails", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.LDAPAccountView
			if err := c.do("POST", "/api/v1/ldap/accounts/"+url.PathEscape(args[0])+"/revoke", nil, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "directory account %s revoked\n", v.ID)
			return nil
		},
	}
	var setIn admin.ClientCertInput
	var setFile string
	setCert := &cobra.Command{
		Use: "set-cert ID --client-cert FILE", Short: "Set the client certificate a directory account binds with (SASL EXTERNAL)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if setFile != "" {
				b, err := os.ReadFile(setFile)
				if err != nil {
					return fmt.Errorf("--client-cert: %w", err)
				}
				setIn.ClientCert = string(b)
			}
			var v admin.LDAPAccountView
			if err := c.do("PUT", "/api/v1/ldap/accounts/"+url.PathEscape(args[0])+"/client-cert", setIn, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "directory account %s binds with the client certificate %s (key %s)\n", v.ID, v.ClientCertSubject, v.ClientCertKey)
			return nil
		},
	}
	setCert.Flags().StringVar(&setFile, "client-cert", "", "PEM client certificate")
	setCert.Flags().StringVar(&setIn.ClientCertKey, "client-cert-key", "", "instead of --client-cert: hex SHA-256 of the certificate's SubjectPublicKeyInfo")
	cmd.AddCommand(list, add, setCert, revoke)
	return cmd
}
