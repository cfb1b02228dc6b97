package graphemu

import (
	"fmt"
	"net/http"
)

// Refusals say how the emulator refuses what Graph's documentation says is
// refused without saying how: a second session for a pair ("a 4xx such as
// 409 or 400"), and a change to a session that is complete or expired
// (nothing documented). The zero value answers 409 Conflict to a duplicate
// and 400 with code sessionNotActive and a message that says "not active".
type Refusals struct {
	// DuplicateStatus is the status of a refused second create: 409
	// (default) or 400.
	DuplicateStatus int
	// NotActiveStatus is the status of a refused change (upload, PATCH,
	// DELETE) to a session that is not active: 400 (default), 403 or 409.
	NotActiveStatus int
	// Terse words every such refusal as generic Graph errors do, with no
	// words a client could match ("BadRequest: The request is invalid.").
	Terse bool
}

// RefusalModes returns the named refusal modes that tests run a client
// under: the defaults and each other plausible answer.
func RefusalModes() map[string]Refusals {
	return map[string]Refusals{
		"documented":       {},
		"duplicate-400":    {DuplicateStatus: http.StatusBadRequest},
		"terse-400":        {DuplicateStatus: http.StatusBadRequest, Terse: true},
		"not-active-403":   {NotActiveStatus: http.StatusForbidden, Terse: true},
		"not-active-409":   {NotActiveStatus: http.StatusConflict},
		"terse-everywhere": {DuplicateStatus: http.StatusConflict, NotActiveStatus: http.StatusBadRequest, Terse: true},
	}
}

func (r Refusals) duplicate(x *exchange, resource, instance, status string) {
	code := r.DuplicateStatus
	if code == 0 {
		code = http.StatusConflict
	}
	if r.Terse {
		x.graphError(code, terseCode(code), "The request is invalid.")
		return
	}
	x.graphError(code, terseCode(code), fmt.Sprintf(
		"An upload session already exists for resource '%s' and access review instance '%s' (status: %s). Only one upload session is allowed per resource and review instance.",
		resource, instance, status))
}

func (r Refusals) notActive(x *exchange, id, status, what string) {
	code := r.NotActiveStatus
	if code == 0 {
		code = http.StatusBadRequest
	}
	if r.Terse {
		x.graphError(code, terseCode(code), "The request is invalid.")
		return
	}
	x.graphError(code, codeSessionNotActive, fmt.Sprintf(
		"Upload session '%s' is not active (status: %s); it accepts no more %s.", id, status, what))
}

// terseCode is the generic Graph error code of a status.
func terseCode(status int) string {
	switch status {
	case http.StatusConflict:
		return "Conflict"
	case http.StatusForbidden:
		return "Forbidden"
	default:
		return "BadRequest"
	}
}
