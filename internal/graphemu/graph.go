package graphemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

// OData type names of the two published shapes (graph-contract.md).
const (
	currentSessionType = "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession"
	currentContextType = "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData"
	legacySessionType  = "#microsoft.graph.customDataProvidedResourceUploadSession"
	legacyContextType  = "#microsoft.graph.accessReviewResourceDataUploadSessionContextData"
	legacyTriggerType  = "#microsoft.graph.accessReviewDataUploadTriggerCallbackData"
)

// Session statuses, as stored (lower case).
const (
	statusActive   = "active"
	statusComplete = "complete"
	statusExpired  = "expired"
)

// codeSessionNotActive is the error code of a change refused because the
// session is complete or expired. Graph documents none; clients should
// also recognise the message ("… is not active …").
const codeSessionNotActive = "sessionNotActive"

// profile is one published shape of the session API.
type profile struct {
	name      string
	version   string   // URL version segment
	segs      []string // collection path after the version; {c} and {r} are ids
	legacy    bool     // beta-2025: source/type, 2025 context, capitalised status
	canList   bool
	canDelete bool
}

var profiles = []*profile{
	{name: "v1.0", version: "v1.0", segs: strings.Split("identityGovernance/entitlementManagement/catalogs/{c}/resources/{r}/uploadSessions", "/"), canList: true, canDelete: true},
	{name: "beta", version: "beta", segs: strings.Split("identityGovernance/catalogs/{c}/accessPackageResources/{r}/uploadSessions", "/"), canList: true, canDelete: true},
	{name: "beta-2025", version: "beta", segs: strings.Split("identityGovernance/entitlementManagement/accessPackageCatalogs/{c}/accessPackageResources/{r}/uploadSessions", "/"), legacy: true},
}

// Route kinds under a collection.
const (
	kindCollection = iota
	kindItem
	kindUpload
)

// graphRoute is a Graph request resolved against a profile.
type graphRoute struct {
	profile    *profile
	catalogID  string
	resourceID string
	sessionID  string
	kind       int
}

func (rt *graphRoute) op(method string) string {
	switch {
	case rt.kind == kindCollection && method == http.MethodGet:
		return "list"
	case rt.kind == kindCollection && method == http.MethodPost:
		return "create"
	case rt.kind == kindItem && method == http.MethodGet:
		return "get"
	case rt.kind == kindItem && method == http.MethodPatch:
		return "patch"
	case rt.kind == kindItem && method == http.MethodDelete:
		return "delete"
	case rt.kind == kindUpload && method == http.MethodPost:
		return "upload"
	}
	return ""
}

// parseGraphPath matches /{version}/… against the profiles. Segments are
// matched case-insensitively, as Graph does. On failure it returns Graph's
// message naming the first segment that fits no profile of that version.
func parseGraphPath(segs []string) (*graphRoute, string) {
	version, rest := segs[0], segs[1:]
	deepest := -1
	for _, p := range profiles {
		rt, bad := matchProfile(p, version, rest)
		if rt != nil {
			return rt, ""
		}
		deepest = max(deepest, bad)
	}
	seg := ""
	switch {
	case deepest >= 0 && deepest < len(rest):
		seg = rest[deepest]
	case len(rest) > 0:
		seg = rest[len(rest)-1]
	}
	return nil, fmt.Sprintf("Resource not found for the segment '%s'.", seg)
}

// matchProfile matches the path after the version against p; on failure
// it returns the index of the first segment that does not fit (-1 when p
// is for another version).
func matchProfile(p *profile, version string, rest []string) (*graphRoute, int) {
	if p.version != version {
		return nil, -1
	}
	rt := &graphRoute{profile: p}
	for i, want := range p.segs {
		if i >= len(rest) {
			return nil, i
		}
		switch want {
		case "{c}":
			rt.catalogID = rest[i]
		case "{r}":
			rt.resourceID = rest[i]
		default:
			if !strings.EqualFold(want, rest[i]) {
				return nil, i
			}
		}
	}
	n := len(p.segs)
	switch extra := rest[n:]; {
	case len(extra) == 0:
		rt.kind = kindCollection
	case len(extra) == 1 && extra[0] != "":
		rt.kind, rt.sessionID = kindItem, extra[0]
	case len(extra) == 2 && extra[0] != "" && (strings.EqualFold(extra[1], "uploadFile") || strings.EqualFold(extra[1], "microsoft.graph.uploadFile")):
		rt.kind, rt.sessionID = kindUpload, extra[0]
	case len(extra) >= 2 && extra[0] != "":
		return nil, n + 1
	default:
		return nil, n
	}
	return rt, -1
}

// session is the emulator's state of one upload session.
type session struct {
	seq          int64
	id           string
	profile      string
	catalogID    string
	resourceID   string
	defID        string
	instID       string
	source       string
	trigger      string
	created      time.Time
	status       string
	isUploadDone bool
	totalBytes   int64
	files        []FileView
}

func pairKey(catalog, resource, instance string) string {
	return strings.ToLower(catalog + "/" + resource + "/" + instance)
}

func (sess *session) view(window time.Duration) SessionView {
	return SessionView{
		ID:                 sess.id,
		Profile:            sess.profile,
		CatalogID:          sess.catalogID,
		ResourceID:         sess.resourceID,
		ReviewDefinitionID: sess.defID,
		ReviewInstanceID:   sess.instID,
		Source:             sess.source,
		Status:             sess.status,
		IsUploadDone:       sess.isUploadDone,
		CreatedAt:          sess.created,
		WindowEnd:          sess.created.Add(window),
		TotalBytes:         sess.totalBytes,
		Files:              append([]FileView(nil), sess.files...),
	}
}

// refreshLocked expires an active session whose window has passed.
func (s *Server) refreshLocked(sess *session, now time.Time) {
	if sess.status == statusActive && !now.Before(sess.created.Add(s.opts.UploadWindow)) {
		sess.status = statusExpired
	}
}

// serveGraph handles a request on a session path: authentication, path
// ids, method, then the operation.
func (s *Server) serveGraph(x *exchange, rt *graphRoute) {
	if !s.authenticate(x) {
		return
	}
	for _, id := range []struct{ what, v string }{{"catalog", rt.catalogID}, {"resource", rt.resourceID}} {
		if !review.IsGUID(id.v) {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid %s id '%s': the id must be a GUID.", id.what, id.v))
			return
		}
	}
	if rt.kind != kindCollection && !review.IsGUID(rt.sessionID) {
		x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid upload session id '%s': the id must be a GUID.", rt.sessionID))
		return
	}
	p := rt.profile
	allow := map[int][]string{
		kindCollection: {http.MethodPost},
		kindItem:       {http.MethodGet, http.MethodPatch},
		kindUpload:     {http.MethodPost},
	}
	if p.canList {
		allow[kindCollection] = append(allow[kindCollection], http.MethodGet)
	}
	if p.canDelete {
		allow[kindItem] = append(allow[kindItem], http.MethodDelete)
	}
	allowed := false
	for _, m := range allow[rt.kind] {
		allowed = allowed || m == x.r.Method
	}
	if !allowed {
		x.w.Header().Set("Allow", strings.Join(allow[rt.kind], ", "))
		x.graphError(http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf(
			"The HTTP method '%s' is not supported on this resource by API '%s'.", x.r.Method, p.name))
		return
	}
	switch x.op {
	case "create":
		s.serveCreate(x, rt)
	case "list":
		s.serveList(x, rt)
	case "get":
		s.serveGet(x, rt)
	case "patch":
		s.servePatch(x, rt)
	case "delete":
		s.serveDelete(x, rt)
	case "upload":
		s.serveUpload(x, rt)
	}
}

// requireJSON checks the Content-Type of a JSON request.
func requireJSON(x *exchange) bool {
	mt, _, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		x.graphError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf(
			"Content-Type '%s' is not supported; the request body must be application/json.", x.r.Header.Get("Content-Type")))
		return false
	}
	return true
}

// readObject reads a small JSON object body, keeping raw members so that
// unknown or mistyped properties can be refused by name.
func readObject(x *exchange) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, 1<<20))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			x.graphError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is larger than 1 MiB.")
		} else {
			x.graphError(http.StatusBadRequest, "BadRequest", "Could not read the request body: "+err.Error())
		}
		return nil, false
	}
	obj, err := decodeObject(body)
	if err != nil {
		x.graphError(http.StatusBadRequest, "BadRequest", "Invalid request body: "+err.Error())
		return nil, false
	}
	return obj, true
}

func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("expected a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return obj, nil
}

// refusal is a message Graph would answer a bad request with; it is an
// error only to flow through the parsers, and is written as Graph writes
// its messages (capitalised, with a full stop).
type refusal string

func (r refusal) Error() string { return string(r) }

func refusef(format string, args ...any) error { return refusal(fmt.Sprintf(format, args...)) }

// shape checks a JSON object against the properties a type allows.
type shape struct {
	typeName string
	obj      map[string]json.RawMessage
	allowed  []string
}

func (sh shape) unknown() error {
	for k := range sh.obj {
		ok := false
		for _, a := range sh.allowed {
			ok = ok || k == a
		}
		if !ok {
			return refusef("Property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type.", k, sh.typeName)
		}
	}
	return nil
}

// str returns the string property name; required ones must be non-empty.
func (sh shape) str(name string, required bool) (string, error) {
	raw, ok := sh.obj[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", refusef("The property '%s' is required on type '%s'.", name, sh.typeName)
		}
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", refusef("The property '%s' of type '%s' must be a string, got %s.", name, sh.typeName, raw)
	}
	if required && strings.TrimSpace(v) == "" {
		return "", refusef("The property '%s' is required on type '%s' and must not be empty.", name, sh.typeName)
	}
	return v, nil
}

func (sh shape) guid(name string) (string, error) {
	v, err := sh.str(name, true)
	if err != nil {
		return "", err
	}
	if !review.IsGUID(v) {
		return "", refusef("The property '%s' must be a GUID, got '%s'.", name, v)
	}
	return v, nil
}

func (sh shape) odataType(want string, required bool) error {
	v, err := sh.str("@odata.type", required)
	if err != nil {
		return err
	}
	if v != "" && v != want {
		return refusef("A type named '%s' could not be resolved by the model: expected '%s' here.", v, want)
	}
	return nil
}

func (sh shape) object(name, typeName string, allowed ...string) (shape, error) {
	raw, ok := sh.obj[name]
	if !ok || string(raw) == "null" {
		return shape{}, refusef("The property '%s' is required on type '%s'.", name, sh.typeName)
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return shape{}, refusef("The property '%s' must be a JSON object: %v", name, err)
	}
	inner := shape{typeName: typeName, obj: obj, allowed: allowed}
	return inner, inner.unknown()
}

// createRequest is a validated create request.
type createRequest struct {
	defID, instID, source, trigger string
}

func parseCreate(p *profile, obj map[string]json.RawMessage) (createRequest, error) {
	var b createRequest
	if p.legacy {
		top := shape{typeName: "microsoft.graph.customDataProvidedResourceUploadSession", obj: obj, allowed: []string{"@odata.type", "source", "type", "data"}}
		if err := top.unknown(); err != nil {
			return b, err
		}
		if err := top.odataType(legacySessionType, false); err != nil {
			return b, err
		}
		var err error
		if b.source, err = top.str("source", true); err != nil {
			return b, err
		}
		if b.trigger, err = top.str("type", true); err != nil {
			return b, err
		}
		// The seed lists the bare name as the value; the examples send
		// the qualified one.
		if b.trigger != legacyTriggerType && b.trigger != strings.TrimPrefix(legacyTriggerType, "#microsoft.graph.") {
			return b, refusef("The property 'type' must be '%s', got '%s'.", legacyTriggerType, b.trigger)
		}
		data, err := top.object("data", "microsoft.graph.accessReviewResourceDataUploadSessionContextData", "@odata.type", "accessReviewId", "accessReviewInstanceId")
		if err != nil {
			return b, err
		}
		if err := data.odataType(legacyContextType, true); err != nil {
			return b, err
		}
		if b.defID, err = data.guid("accessReviewId"); err != nil {
			return b, err
		}
		if b.instID, err = data.guid("accessReviewInstanceId"); err != nil {
			return b, err
		}
		return b, nil
	}
	top := shape{typeName: "microsoft.graph.customDataProvidedResourceAccessReviewUploadSession", obj: obj, allowed: []string{"@odata.type", "data"}}
	if err := top.unknown(); err != nil {
		return b, err
	}
	if err := top.odataType(currentSessionType, true); err != nil {
		return b, err
	}
	data, err := top.object("data", "microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData", "@odata.type", "reviewDefinitionId", "reviewInstanceId")
	if err != nil {
		return b, err
	}
	if err := data.odataType(currentContextType, true); err != nil {
		return b, err
	}
	if b.defID, err = data.guid("reviewDefinitionId"); err != nil {
		return b, err
	}
	if b.instID, err = data.guid("reviewInstanceId"); err != nil {
		return b, err
	}
	return b, nil
}

func (s *Server) serveCreate(x *exchange, rt *graphRoute) {
	if !requireJSON(x) {
		return
	}
	obj, ok := readObject(x)
	if !ok {
		return
	}
	b, err := parseCreate(rt.profile, obj)
	if err != nil {
		x.graphError(http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if s.refuseLate(x, b.instID, "new upload session") {
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	key := pairKey(rt.catalogID, rt.resourceID, b.instID)
	if old := s.byPair[key]; old != nil {
		s.refreshLocked(old, now)
		s.mu.Unlock()
		s.opts.Refusals.duplicate(x, rt.resourceID, b.instID, old.status)
		return
	}
	s.seq++
	sess := &session{
		seq:        s.seq,
		id:         newGUID(),
		profile:    rt.profile.name,
		catalogID:  strings.ToLower(rt.catalogID),
		resourceID: strings.ToLower(rt.resourceID),
		defID:      b.defID,
		instID:     b.instID,
		source:     b.source,
		trigger:    b.trigger,
		created:    now,
		status:     statusActive,
	}
	s.sessions[sess.id] = sess
	s.byPair[key] = sess
	out := s.renderLocked(x, rt, sess, true)
	s.mu.Unlock()
	x.w.Header().Set("Location", x.base()+"/"+rt.profile.version+"/"+collectionPath(rt)+"/"+sess.id)
	x.writeJSON(http.StatusCreated, out)
}

// lookupLocked finds the session of rt, refreshed; nil when it does not
// exist under this catalog and resource.
func (s *Server) lookupLocked(rt *graphRoute) *session {
	sess := s.sessions[strings.ToLower(rt.sessionID)]
	if sess == nil || !strings.EqualFold(sess.catalogID, rt.catalogID) || !strings.EqualFold(sess.resourceID, rt.resourceID) {
		return nil
	}
	s.refreshLocked(sess, s.nowLocked())
	return sess
}

func notFound(x *exchange, rt *graphRoute) {
	x.graphError(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf(
		"Upload session '%s' was not found for resource '%s' in catalog '%s'.", rt.sessionID, rt.resourceID, rt.catalogID))
}

// lockActive locks s.mu and returns the session rt names, with the lock
// held, when it is active. Otherwise it unlocks, answers the refusal (not
// found, or not active: it takes no more what), and returns nil.
func (s *Server) lockActive(x *exchange, rt *graphRoute, what string) *session {
	s.mu.Lock()
	sess := s.lookupLocked(rt)
	if sess == nil {
		s.mu.Unlock()
		notFound(x, rt)
		return nil
	}
	if sess.status != statusActive {
		id, status := sess.id, sess.status
		s.mu.Unlock()
		s.opts.Refusals.notActive(x, id, status, what)
		return nil
	}
	return sess
}

// checkQuery refuses system query options other than those allowed, as
// Graph does.
func checkQuery(x *exchange, allowed ...string) bool {
	for k, v := range x.r.URL.Query() {
		if !strings.HasPrefix(k, "$") {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.EqualFold(k, a)
		}
		if !ok {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Query option '%s' is not allowed. Make sure that it is supported for this request.", k))
			return false
		}
		if strings.EqualFold(k, "$expand") {
			for _, e := range v {
				for _, p := range strings.Split(e, ",") {
					if strings.TrimSpace(p) != "files" {
						x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.customDataProvidedResourceUploadSession'.", strings.TrimSpace(p)))
						return false
					}
				}
			}
		}
	}
	return true
}

func (s *Server) serveGet(x *exchange, rt *graphRoute) {
	if !checkQuery(x, "$expand") {
		return
	}
	s.mu.Lock()
	sess := s.lookupLocked(rt)
	if sess == nil {
		s.mu.Unlock()
		notFound(x, rt)
		return
	}
	out := s.renderLocked(x, rt, sess, true)
	s.mu.Unlock()
	x.writeJSON(http.StatusOK, out)
}

func (s *Server) servePatch(x *exchange, rt *graphRoute) {
	if !requireJSON(x) {
		return
	}
	obj, ok := readObject(x)
	if !ok {
		return
	}
	for k, v := range obj {
		if k != "isUploadDone" {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Property '%s' cannot be changed: isUploadDone is the only writable property of an upload session.", k))
			return
		}
		if string(bytes.TrimSpace(v)) != "true" {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("isUploadDone can only be set to true, got %s.", v))
			return
		}
	}
	if len(obj) == 0 {
		x.graphError(http.StatusBadRequest, "BadRequest", "The request body must set isUploadDone to true.")
		return
	}
	sess := s.lockActive(x, rt, "changes")
	if sess == nil {
		return
	}
	sess.status, sess.isUploadDone = statusComplete, true
	out := s.renderLocked(x, rt, sess, true)
	s.mu.Unlock()
	x.writeJSON(http.StatusOK, out)
}

func (s *Server) serveDelete(x *exchange, rt *graphRoute) {
	sess := s.lockActive(x, rt, "changes and cannot be deleted")
	if sess == nil {
		return
	}
	delete(s.sessions, sess.id)
	delete(s.byPair, pairKey(sess.catalogID, sess.resourceID, sess.instID))
	s.mu.Unlock()
	x.w.WriteHeader(http.StatusNoContent)
}

// graphTime formats a timestamp the way Graph does (7 fractional digits).
func graphTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// collectionPath is the collection path of rt after the version.
func collectionPath(rt *graphRoute) string {
	out := make([]string, len(rt.profile.segs))
	for i, seg := range rt.profile.segs {
		switch seg {
		case "{c}":
			out[i] = rt.catalogID
		case "{r}":
			out[i] = rt.resourceID
		default:
			out[i] = seg
		}
	}
	return strings.Join(out, "/")
}

// contextURL is the @odata.context of the collection of rt.
func contextURL(x *exchange, rt *graphRoute) string {
	var parts []string
	for _, seg := range rt.profile.segs {
		switch seg {
		case "{c}":
			parts[len(parts)-1] += "('" + rt.catalogID + "')"
		case "{r}":
			parts[len(parts)-1] += "('" + rt.resourceID + "')"
		default:
			parts = append(parts, seg)
		}
	}
	return x.base() + "/" + rt.profile.version + "/$metadata#" + strings.Join(parts, "/")
}

// sessionJSON is a session as the profiles answer it; absent fields are
// omitted per profile.
type sessionJSON struct {
	ODataContext       string     `json:"@odata.context,omitempty"`
	ODataType          string     `json:"@odata.type"`
	ID                 string     `json:"id"`
	Status             string     `json:"status"`
	IsUploadDone       bool       `json:"isUploadDone"`
	CreatedDateTime    string     `json:"createdDateTime"`
	ExpirationDateTime string     `json:"expirationDateTime,omitempty"`
	ReferenceID        string     `json:"referenceId,omitempty"`
	Source             string     `json:"source,omitempty"`
	Type               string     `json:"type,omitempty"`
	Data               any        `json:"data"`
	Stats              statsJSON  `json:"stats"`
	Files              []fileJSON `json:"files"`
}

type statsJSON struct {
	FilesUploaded      int32 `json:"filesUploaded"`
	TotalBytesUploaded int64 `json:"totalBytesUploaded"`
}

type fileJSON struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Size             int64  `json:"size"`
	UploadedDateTime string `json:"uploadedDateTime"`
}

type currentContextJSON struct {
	ODataType          string `json:"@odata.type"`
	ReviewDefinitionID string `json:"reviewDefinitionId"`
	ReviewInstanceID   string `json:"reviewInstanceId"`
}

type legacyContextJSON struct {
	ODataType              string `json:"@odata.type"`
	AccessReviewID         string `json:"accessReviewId"`
	AccessReviewInstanceID string `json:"accessReviewInstanceId"`
}

// legacyExpiry is the expirationDateTime of the 2025 examples: creation
// plus 24 hours, whatever the upload window (which is what decides expiry).
const legacyExpiry = 24 * time.Hour

// renderLocked renders sess in the shape of rt's profile.
func (s *Server) renderLocked(x *exchange, rt *graphRoute, sess *session, withContext bool) sessionJSON {
	out := sessionJSON{
		ID:              sess.id,
		Status:          sess.status,
		IsUploadDone:    sess.isUploadDone,
		CreatedDateTime: graphTime(sess.created),
		Stats:           statsJSON{FilesUploaded: int32(len(sess.files)), TotalBytesUploaded: sess.totalBytes},
		Files:           make([]fileJSON, len(sess.files)),
	}
	for i, f := range sess.files {
		out.Files[i] = fileJSON{ID: f.ID, Name: f.Name, Size: f.Size, UploadedDateTime: graphTime(f.UploadedAt)}
	}
	if withContext {
		out.ODataContext = contextURL(x, rt) + "/$entity"
	}
	if rt.profile.legacy {
		out.ODataType = legacySessionType
		out.Status = strings.ToUpper(sess.status[:1]) + sess.status[1:]
		out.ExpirationDateTime = graphTime(sess.created.Add(legacyExpiry))
		out.Source = sess.source
		out.Type = sess.trigger
		if out.Type == "" {
			out.Type = legacyTriggerType
		}
		out.Data = legacyContextJSON{ODataType: legacyContextType, AccessReviewID: sess.defID, AccessReviewInstanceID: sess.instID}
		return out
	}
	out.ODataType = currentSessionType
	out.ReferenceID = sess.instID
	out.Data = currentContextJSON{ODataType: currentContextType, ReviewDefinitionID: sess.defID, ReviewInstanceID: sess.instID}
	return out
}
