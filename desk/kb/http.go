package kb

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// APIOptions configure the knowledge base's routes.
type APIOptions struct {
	KB     *KB
	Logger *slog.Logger
	// PublicRatePerMinute and PublicBurst limit the public routes per
	// client address (config kb.public_rate_per_minute, kb.public_burst);
	// defaults 30 and 10.
	PublicRatePerMinute, PublicBurst int
	// Now is the rate limiter's clock; default time.Now.
	Now func() time.Time
}

// API serves the knowledge base over HTTP.
type API struct {
	kb      *KB
	log     *slog.Logger
	limiter *limiter
}

// NewAPI returns the routes' handlers. With no KB (the OpenAPI check) only
// Routes may be called.
func NewAPI(o APIOptions) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PublicRatePerMinute <= 0 {
		o.PublicRatePerMinute = 30
	}
	if o.PublicBurst <= 0 {
		o.PublicBurst = 10
	}
	return &API{kb: o.KB, log: o.Logger.With("component", "kb"), limiter: newLimiter(o.PublicRatePerMinute, o.PublicBurst, o.Now)}
}

// Who reads and who writes. Hotline agents, engineers, the technical
// centre and supervisors search; supervisors and the technical centre
// (who write up what escalations taught them) maintain the articles.
var (
	readers = []string{httpapi.RoleServiceAgent, httpapi.RoleEngineer, httpapi.RoleTechnicalCentre, httpapi.RoleSupervisor}
	writers = []string{httpapi.RoleTechnicalCentre, httpapi.RoleSupervisor}
)

// Routes are the knowledge base's API routes.
func (a *API) Routes() []httpapi.Route {
	read := httpapi.Access{Roles: readers}
	write := httpapi.Access{Roles: writers}
	public := httpapi.Access{Public: true}
	return []httpapi.Route{
		{Method: "GET", Pattern: "/api/v1/kb/search", Handler: a.search, Access: read},
		{Method: "GET", Pattern: "/api/v1/kb/articles/{id}", Handler: a.article, Access: read},
		{Method: "POST", Pattern: "/api/v1/kb/articles", Handler: a.create, Access: write},
		{Method: "PUT", Pattern: "/api/v1/kb/articles/{id}", Handler: a.update, Access: write},
		{Method: "POST", Pattern: "/api/v1/kb/articles/{id}/retire", Handler: a.retire, Access: write},
		{Method: "GET", Pattern: "/api/v1/kb/public/search", Handler: a.limited(a.publicSearch), Access: public},
		{Method: "GET", Pattern: "/api/v1/kb/public/articles/{id}", Handler: a.limited(a.publicArticle), Access: public},
	}
}

// Register mounts the routes on mux.
func (a *API) Register(mux *http.ServeMux, m httpapi.Mount) {
	httpapi.Register(mux, a.Routes(), m)
}

// ReaderLevels are the levels a staff member with role may read: a hotline
// agent public and agent articles, everyone else on the desk all of them.
func ReaderLevels(role string) []string {
	if role == httpapi.RoleServiceAgent {
		return levelsUpTo(LevelAgent)
	}
	return Levels
}

func levelsOf(r *http.Request) []string {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok || p.Staff == nil {
		return []string{LevelPublic}
	}
	return ReaderLevels(p.Staff.Role)
}

// apiErr maps the package's errors to API errors, in one place.
func apiErr(err error) error {
	var ie *InputError
	var se *StateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return httpapi.BadRequest("%s", ie.Reason)
	case errors.As(err, &se):
		return httpapi.Conflict("%s", se.Reason)
	case errors.Is(err, ErrNotFound):
		return httpapi.NotFound("%s", err.Error())
	case errors.Is(err, store.ErrExists):
		return httpapi.Conflict("%s", err.Error())
	}
	return err
}

func (a *API) search(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r.URL.Query(), a.kb.Categories())
	if err != nil {
		return apiErr(err)
	}
	q.Levels = levelsOf(r)
	res, err := a.kb.Find(r.Context(), q)
	if err != nil {
		return apiErr(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, res)
}

func (a *API) article(w http.ResponseWriter, r *http.Request) error {
	levels := levelsOf(r)
	if len(levels) == len(Levels) {
		levels = nil // every level, retired articles too
	}
	art, err := a.kb.Article(r.Context(), r.PathValue("id"), levels)
	if err != nil {
		return apiErr(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, art)
}

func (a *API) readArticle(r *http.Request) (*ArticleInput, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err // a body over the limit: 413
	}
	in, err := DecodeArticle(b, a.kb.Categories(), a.kb.opts.MaxBodyBytes)
	return in, apiErr(err)
}

func actor(r *http.Request) string {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p.ID()
}

func (a *API) create(w http.ResponseWriter, r *http.Request) error {
	in, err := a.readArticle(r)
	if err != nil {
		return err
	}
	art, err := a.kb.Create(r.Context(), actor(r), in)
	if err != nil {
		return apiErr(err)
	}
	a.log.Info("article created", "id", art.ID, "lang", art.Lang, "level", art.Level, "by", art.CreatedBy)
	return httpapi.WriteJSON(w, http.StatusCreated, art)
}

func (a *API) update(w http.ResponseWriter, r *http.Request) error {
	in, err := a.readArticle(r)
	if err != nil {
		return err
	}
	art, err := a.kb.Update(r.Context(), actor(r), r.PathValue("id"), in)
	if err != nil {
		return apiErr(err)
	}
	a.log.Info("article updated", "id", art.ID, "version", art.Version, "by", art.UpdatedBy)
	return httpapi.WriteJSON(w, http.StatusOK, art)
}

// RetireRequest says why an article is retired.
type RetireRequest struct {
	Reason string `json:"reason"`
}

func (a *API) retire(w http.ResponseWriter, r *http.Request) error {
	var req RetireRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Reason == "" || len(req.Reason) > MaxTitleBytes || !printable(req.Reason, false) {
		return httpapi.BadRequest("reason: want 1 to %d printable bytes", MaxTitleBytes)
	}
	art, err := a.kb.Retire(r.Context(), actor(r), r.PathValue("id"), req.Reason)
	if err != nil {
		return apiErr(err)
	}
	a.log.Info("article retired", "id", art.ID, "by", art.RetiredBy)
	return httpapi.WriteJSON(w, http.StatusOK, art)
}

// limited answers 429 with Retry-After to a client address over its rate.
func (a *API) limited(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if ok, wait := a.limiter.allow(clientKey(r)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return httpapi.Errorf(http.StatusTooManyRequests, "rate_limited", "too many searches from this address; retry in %s", wait.Round(time.Second))
		}
		return h(w, r)
	}
}

// PublicHit is a hit of the self-service search: no level, no score.
type PublicHit struct {
	ID         string              `json:"id"`
	Lang       string              `json:"lang"`
	Title      string              `json:"title"`
	Category   string              `json:"category"`
	Highlights map[string][]string `json:"highlights,omitempty"`
}

// PublicArticle is an article as the self-service pages show it: no
// authors, no level, no version history.
type PublicArticle struct {
	ID          string    `json:"id"`
	Lang        string    `json:"lang"`
	Title       string    `json:"title"`
	Body        string    `json:"body"`
	Category    string    `json:"category"`
	Tags        []string  `json:"tags,omitempty"`
	Translation string    `json:"translation,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (a *API) publicSearch(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r.URL.Query(), a.kb.Categories())
	if err != nil {
		return apiErr(err)
	}
	q.Levels = []string{LevelPublic}
	res, err := a.kb.Find(r.Context(), q)
	if err != nil {
		return apiErr(err)
	}
	hits := make([]PublicHit, len(res.Hits))
	for i, h := range res.Hits {
		hits[i] = PublicHit{ID: h.ID, Lang: h.Lang, Title: h.Title, Category: h.Category, Highlights: h.Highlights}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"total": res.Total, "hits": hits})
}

func (a *API) publicArticle(w http.ResponseWriter, r *http.Request) error {
	art, err := a.kb.Article(r.Context(), r.PathValue("id"), []string{LevelPublic})
	if err != nil {
		return apiErr(err)
	}
	// A public article's translation may be for agents only: name it only
	// if it is public too.
	tr := ""
	if art.Translation != "" {
		if _, err := a.kb.Article(r.Context(), art.Translation, []string{LevelPublic}); err == nil {
			tr = art.Translation
		}
	}
	return httpapi.WriteJSON(w, http.StatusOK, PublicArticle{ID: art.ID, Lang: art.Lang, Title: art.Title, Body: art.Body,
		Category: art.Category, Tags: art.Tags, Translation: tr, UpdatedAt: art.UpdatedAt})
}
