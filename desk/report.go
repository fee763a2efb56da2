package desk

import (
	"context"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Report is the desk's report over the tickets opened in [From, To).
type Report struct {
	From       time.Time      `json:"from"`
	To         time.Time      `json:"to"`
	Tickets    int            `json:"tickets"`
	ByCategory map[string]int `json:"by_category"`
	ByClass    map[string]int `json:"by_class"`
	ByChannel  map[string]int `json:"by_channel"`
	ByState    map[string]int `json:"by_state"`
	// SLA: of the tickets resolved, how many met every deadline.
	Resolved    int            `json:"resolved"`
	SLAMet      int            `json:"sla_met"`
	SLAMetPct   float64        `json:"sla_met_percent"`
	Breaches    map[string]int `json:"breaches"`
	HandlingP50 float64        `json:"handling_hours_p50"`
	HandlingAvg float64        `json:"handling_hours_mean"`
	// Surveys answered, their mean score and how many gave each score.
	Surveys     int            `json:"surveys"`
	SurveyMean  float64        `json:"survey_score_mean"`
	SurveyScore map[string]int `json:"survey_scores"`
}

// BuildReport reads every ticket once.
func (d *Desk) BuildReport(ctx context.Context, from, to time.Time) (*Report, error) {
	r := &Report{From: from, To: to, ByCategory: map[string]int{}, ByClass: map[string]int{}, ByChannel: map[string]int{},
		ByState: map[string]int{}, Breaches: map[string]int{}, SurveyScore: map[string]int{}}
	var handling []float64
	scoreSum := 0
	err := d.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachTicketSummary(func(t *store.TicketSummary) error {
			if t.CreatedAt.Before(from) || !t.CreatedAt.Before(to) || t.MergedInto != "" {
				return nil
			}
			r.Tickets++
			r.ByCategory[t.Category]++
			if top, _, ok := strings.Cut(t.Category, "/"); ok {
				r.ByCategory[top]++
			}
			r.ByClass[t.Class]++
			r.ByChannel[t.Channel]++
			r.ByState[t.State]++
			for _, b := range t.SLA.Breaches {
				kind, _, _ := strings.Cut(b.Kind, "@")
				r.Breaches[kind]++
			}
			if !t.ResolvedAt.IsZero() || t.State == StateClosed {
				r.Resolved++
				if len(t.SLA.Breaches) == 0 {
					r.SLAMet++
				}
				end := t.ResolvedAt
				if end.IsZero() {
					end = t.ClosedAt
				}
				handling = append(handling, end.Sub(t.CreatedAt).Hours())
			}
			if s := t.Survey; s != nil && !s.AnsweredAt.IsZero() {
				r.Surveys++
				scoreSum += s.Score
				r.SurveyScore[strconv.Itoa(s.Score)]++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if r.Resolved > 0 {
		r.SLAMetPct = 100 * float64(r.SLAMet) / float64(r.Resolved)
	}
	if len(handling) > 0 {
		slices.Sort(handling)
		r.HandlingP50 = handling[len(handling)/2]
		sum := 0.0
		for _, h := range handling {
			sum += h
		}
		r.HandlingAvg = sum / float64(len(handling))
	}
	if r.Surveys > 0 {
		r.SurveyMean = float64(scoreSum) / float64(r.Surveys)
	}
	return r, nil
}

// writeCSV writes the report as section,key,value rows.
func (r *Report) writeCSV(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="desk-report.csv"`)
	cw := csv.NewWriter(w)
	rows := [][]string{{"section", "key", "value"},
		{"period", "from", r.From.UTC().Format(time.RFC3339)}, {"period", "to", r.To.UTC().Format(time.RFC3339)},
		{"tickets", "total", strconv.Itoa(r.Tickets)}}
	for _, m := range []struct {
		name string
		v    map[string]int
	}{{"category", r.ByCategory}, {"class", r.ByClass}, {"channel", r.ByChannel}, {"state", r.ByState}, {"breaches", r.Breaches}, {"survey_score", r.SurveyScore}} {
		keys := make([]string, 0, len(m.v))
		for k := range m.v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			rows = append(rows, []string{m.name, k, strconv.Itoa(m.v[k])})
		}
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	rows = append(rows, []string{"sla", "resolved", strconv.Itoa(r.Resolved)}, []string{"sla", "met", strconv.Itoa(r.SLAMet)},
		[]string{"sla", "met_percent", f(r.SLAMetPct)}, []string{"handling_hours", "p50", f(r.HandlingP50)},
		[]string{"handling_hours", "mean", f(r.HandlingAvg)}, []string{"survey", "answered", strconv.Itoa(r.Surveys)},
		[]string{"survey", "mean_score", f(r.SurveyMean)})
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

func (d *Desk) report(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	to := d.now()
	from := to.AddDate(0, -1, 0)
	var err error
	if s := q.Get("from"); s != "" {
		if from, err = time.Parse(time.RFC3339, s); err != nil {
			return httpapi.BadRequest("from %q is not RFC 3339", s)
		}
	}
	if s := q.Get("to"); s != "" {
		if to, err = time.Parse(time.RFC3339, s); err != nil {
			return httpapi.BadRequest("to %q is not RFC 3339", s)
		}
	}
	if !to.After(from) {
		return httpapi.BadRequest("to must be after from")
	}
	rep, err := d.BuildReport(r.Context(), from, to)
	if err != nil {
		return err
	}
	switch q.Get("format") {
	case "", "json":
		return httpapi.WriteJSON(w, http.StatusOK, rep)
	case "csv":
		return rep.writeCSV(w)
	}
	return httpapi.BadRequest("format %q is not one of json, csv", q.Get("format"))
}
