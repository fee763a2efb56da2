package main

import (
	"fmt"
	"html"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/store"
)

// kbCmd is the service desk's knowledge base (SPEC Art. 15-17) through the
// API: search and show for every desk role, add and retire for the
// technical centre and supervisors.
func kbCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "kb", Short: "Knowledge base: add, search, show, retire articles (desk staff credential)"}
	c.register(cmd)

	var in kb.ArticleInput
	var bodyFile string
	add := &cobra.Command{
		Use:   "add --lang zh|en --title TITLE --category CAT --level LEVEL (--body TEXT | --body-file FILE|-)",
		Short: "Create an article; it is searchable when the command returns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (in.Body == "") == (bodyFile == "") {
				return fmt.Errorf("give the body with exactly one of --body and --body-file")
			}
			if bodyFile != "" {
				var b []byte
				var err error
				if bodyFile == "-" {
					b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 8<<20))
				} else {
					b, err = os.ReadFile(bodyFile)
				}
				if err != nil {
					return fmt.Errorf("reading the body: %w", err)
				}
				in.Body = string(b)
			}
			var a store.KBArticle
			if err := c.do("POST", "/api/v1/kb/articles", in, &a); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "article %s saved (%s, %s, %s): %s\n", a.ID, a.Lang, a.Level, a.Category, a.Title)
			return nil
		},
	}
	add.Flags().StringVar(&in.Lang, "lang", "", "zh or en (required)")
	add.Flags().StringVar(&in.Title, "title", "", "title (required)")
	add.Flags().StringVar(&in.Category, "category", "", "category: "+strings.Join(kb.DefaultCategories, ", ")+" (required)")
	add.Flags().StringVar(&in.Level, "level", "", "who may read it: "+strings.Join(kb.Levels, ", ")+" (required)")
	add.Flags().StringSliceVar(&in.Tags, "tag", nil, "tag (repeatable)")
	add.Flags().StringVar(&in.Translation, "translation", "", "ID of the same article in the other language")
	add.Flags().StringVar(&in.Body, "body", "", "body text")
	add.Flags().StringVar(&bodyFile, "body-file", "", "file holding the body, - for standard input")
	for _, f := range []string{"lang", "title", "category", "level"} {
		add.MarkFlagRequired(f)
	}

	var lang, category, level string
	var limit int
	search := &cobra.Command{
		Use: "search WORDS...", Short: "Full-text search (Chinese and English); matches shown between [ and ]", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := url.Values{"q": {strings.Join(args, " ")}, "limit": {strconv.Itoa(limit)}}
			for k, s := range map[string]string{"lang": lang, "category": category, "level": level} {
				if s != "" {
					v.Set(k, s)
				}
			}
			var res kb.Result
			if err := c.do("GET", "/api/v1/kb/search?"+v.Encode(), nil, &res); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d found\n", res.Total)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLANG\tLEVEL\tCATEGORY\tTITLE\tMATCH")
			for _, h := range res.Hits {
				match := ""
				if b := h.Highlights["body"]; len(b) > 0 {
					match = plain(b[0])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Lang, h.Level, h.Category, h.Title, match)
			}
			return tw.Flush()
		},
	}
	search.Flags().StringVar(&lang, "lang", "", "only zh or en articles")
	search.Flags().StringVar(&category, "category", "", "only this category (and its children)")
	search.Flags().StringVar(&level, "level", "", "only this level")
	search.Flags().IntVar(&limit, "limit", 10, "most hits (1 to 50)")

	show := &cobra.Command{
		Use: "show ID", Short: "Print an article", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a store.KBArticle
			if err := c.do("GET", "/api/v1/kb/articles/"+url.PathEscape(args[0]), nil, &a); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			state := "active"
			if a.Retired {
				state = "retired " + a.RetiredAt.Format(time.RFC3339) + " by " + a.RetiredBy
			}
			fmt.Fprintf(w, "%s  %s\n%s, %s, %s, version %d, %s\nupdated %s by %s\n", a.ID, a.Title, a.Lang, a.Level, a.Category, a.Version, state,
				a.UpdatedAt.Format(time.RFC3339), a.UpdatedBy)
			if len(a.Tags) > 0 {
				fmt.Fprintf(w, "tags: %s\n", strings.Join(a.Tags, ", "))
			}
			if a.Translation != "" {
				fmt.Fprintf(w, "translation: %s\n", a.Translation)
			}
			fmt.Fprintf(w, "\n%s\n", a.Body)
			return nil
		},
	}

	var reason string
	retire := &cobra.Command{
		Use: "retire ID --reason TEXT", Short: "Take an article out of every search (it stays in the store)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a store.KBArticle
			if err := c.do("POST", "/api/v1/kb/articles/"+url.PathEscape(args[0])+"/retire", kb.RetireRequest{Reason: reason}, &a); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "article %s retired\n", a.ID)
			return nil
		},
	}
	retire.Flags().StringVar(&reason, "reason", "", "why (required)")
	retire.MarkFlagRequired("reason")
	cmd.AddCommand(add, search, show, retire)
	return cmd
}

// plain turns a highlight fragment (escaped HTML, matches in <mark>) into
// terminal text with the matches in brackets.
func plain(frag string) string {
	frag = strings.NewReplacer("<mark>", "[", "</mark>", "]", "\n", " ").Replace(frag)
	return html.UnescapeString(frag)
}
