package graphemu

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// predicate is one `prop eq 'value'` clause of a $filter.
type predicate struct{ prop, value string }

// parseFilter parses the $filter forms the session list supports:
// `referenceId eq '…'`, `status eq '…'`, joined with `and`.
func parseFilter(f string) ([]predicate, error) {
	var out []predicate
	rest := strings.TrimSpace(f)
	if rest == "" {
		return nil, nil
	}
	for {
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return nil, refusef("Invalid filter clause: expected 'property eq value' in '%s'.", f)
		}
		prop := rest[:i]
		rest = strings.TrimLeft(rest[i:], " ")
		op, after, ok := strings.Cut(rest, " ")
		if !ok || !strings.EqualFold(op, "eq") {
			return nil, refusef("Invalid filter clause: only the 'eq' operator is supported, in '%s'.", f)
		}
		rest = strings.TrimLeft(after, " ")
		if !strings.HasPrefix(rest, "'") {
			return nil, refusef("Invalid filter clause: the value of '%s' must be a quoted string, in '%s'.", prop, f)
		}
		var val strings.Builder
		j := 1
		closed := false
		for j < len(rest) {
			if rest[j] == '\'' {
				if j+1 < len(rest) && rest[j+1] == '\'' {
					val.WriteByte('\'')
					j += 2
					continue
				}
				closed = true
				j++
				break
			}
			val.WriteByte(rest[j])
			j++
		}
		if !closed {
			return nil, refusef("Invalid filter clause: unterminated string literal in '%s'.", f)
		}
		switch prop {
		case "referenceId":
		case "status":
			switch val.String() {
			case "active", "complete", "expired", "unknownFutureValue":
			default:
				return nil, refusef("Invalid filter clause: '%s' is not a member of the enum type 'microsoft.graph.customDataProvidedResourceUploadStatus'.", val.String())
			}
		default:
			return nil, refusef("Invalid filter clause: could not find a property named '%s' on type 'microsoft.graph.customDataProvidedResourceUploadSession', or it does not support filtering.", prop)
		}
		out = append(out, predicate{prop: prop, value: val.String()})
		rest = strings.TrimLeft(rest[j:], " ")
		if rest == "" {
			return out, nil
		}
		kw, after, ok := strings.Cut(rest, " ")
		if !ok || !strings.EqualFold(kw, "and") {
			return nil, refusef("Invalid filter clause: only 'and' can join clauses, in '%s'.", f)
		}
		rest = strings.TrimLeft(after, " ")
	}
}

func (sess *session) matches(preds []predicate) bool {
	for _, p := range preds {
		switch p.prop {
		case "referenceId":
			if !strings.EqualFold(sess.instID, p.value) {
				return false
			}
		case "status":
			if sess.status != p.value {
				return false
			}
		}
	}
	return true
}

// queryGet returns a system query option, its name matched without case.
func queryGet(q url.Values, name string) (string, bool) {
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

func encodeSkipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeSkipToken(tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 || !strings.HasPrefix(string(b), "offset:") {
		return 0, false
	}
	return n, true
}

func (s *Server) serveList(x *exchange, rt *graphRoute) {
	if !checkQuery(x, "$filter", "$top", "$skip", "$skiptoken", "$expand", "$count", "$orderby") {
		return
	}
	q := x.r.URL.Query()
	bad := func(msg string) { x.graphError(http.StatusBadRequest, "BadRequest", msg) }
	filter, _ := queryGet(q, "$filter")
	preds, err := parseFilter(filter)
	if err != nil {
		bad(err.Error())
		return
	}
	pageSize := s.opts.MaxPageSize
	if v, ok := queryGet(q, "$top"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad(fmt.Sprintf("Invalid value '%s' for query option $top: a positive integer is expected.", v))
			return
		}
		pageSize = min(n, pageSize)
	}
	offset := 0
	if v, ok := queryGet(q, "$skip"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad(fmt.Sprintf("Invalid value '%s' for query option $skip: a non-negative integer is expected.", v))
			return
		}
		offset = n
	}
	if v, ok := queryGet(q, "$skiptoken"); ok {
		n, ok := decodeSkipToken(v)
		if !ok {
			bad(fmt.Sprintf("Invalid $skiptoken '%s'.", v))
			return
		}
		offset = n
	}
	count := false
	if v, ok := queryGet(q, "$count"); ok {
		switch strings.ToLower(v) {
		case "true":
			count = true
		case "false":
		default:
			bad(fmt.Sprintf("Invalid value '%s' for query option $count: true or false is expected.", v))
			return
		}
	}
	desc := false
	if v, ok := queryGet(q, "$orderby"); ok {
		switch strings.Join(strings.Fields(v), " ") {
		case "createdDateTime", "createdDateTime asc":
		case "createdDateTime desc":
			desc = true
		default:
			bad(fmt.Sprintf("Invalid value '%s' for query option $orderby: only createdDateTime [asc|desc] is supported.", v))
			return
		}
	}

	s.mu.Lock()
	now := s.nowLocked()
	var all []*session
	for _, sess := range s.sessions {
		if !strings.EqualFold(sess.catalogID, rt.catalogID) || !strings.EqualFold(sess.resourceID, rt.resourceID) {
			continue
		}
		s.refreshLocked(sess, now)
		if sess.matches(preds) {
			all = append(all, sess)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if desc {
			return all[i].seq > all[j].seq
		}
		return all[i].seq < all[j].seq
	})
	total := len(all)
	page := []sessionJSON{}
	for i := offset; i < total && len(page) < pageSize; i++ {
		page = append(page, s.renderLocked(x, rt, all[i], false))
	}
	s.mu.Unlock()

	out := map[string]any{
		"@odata.context": contextURL(x, rt),
		"value":          page,
	}
	if count {
		out["@odata.count"] = total
	}
	if next := offset + len(page); next < total {
		nq := url.Values{}
		for k, v := range q {
			if !strings.EqualFold(k, "$skip") && !strings.EqualFold(k, "$skiptoken") {
				nq[k] = v
			}
		}
		nq.Set("$skiptoken", encodeSkipToken(next))
		out["@odata.nextLink"] = x.base() + x.r.URL.Path + "?" + strings.ReplaceAll(nq.Encode(), "+", "%20")
	}
	x.writeJSON(http.StatusOK, out)
}
