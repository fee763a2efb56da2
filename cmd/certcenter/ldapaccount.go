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
	cmd := &cobra.Command{Use: "ldap-account", Short: "Directory accounts of health information systems: list, add, revoke (CA operator credential)"}
	c.register(cmd)

	list := &cobra.Command{
		Use: "list", Short: "List directory accounts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Accounts []admin.LDAPAccountView }
			if err := c.do("GET", "/api/v1/ldap/accounts", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tEXPIRES\tORGS\tDN\tAPPROVED BY")
			for _, a := range out.Accounts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.ExpiresAt.Format(time.DateOnly), strings.Join(a.Orgs, ","), a.DN, a.ApprovedBy)
			}
			return tw.Flush()
		},
	}
	var r admin.LDAPAccountRequest
	var passwordEnv string
	add := &cobra.Command{
		Use:   "add ID --dn DN --org ORG [--org ORG] --valid-days N",
		Short: "Create a directory account; prints the generated password once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.ID = args[0]
			if passwordEnv != "" {
				if r.Password = os.Getenv(passwordEnv); r.Password == "" {
					return fmt.Errorf("--password-env: %s is empty", passwordEnv)
				}
			}
			var v admin.LDAPAccountView
			if err := c.do("POST", "/api/v1/ldap/accounts", r, &v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "directory account %s binds as %s until %s, reading %s\n", v.ID, v.DN, v.ExpiresAt.Format(time.RFC3339), strings.Join(v.Orgs, ", "))
			if v.Password != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "password (shown once): %s\n", v.Password)
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
	cmd.AddCommand(list, add, revoke)
	return cmd
}
