package claim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// FuzzDecodeClaim stores arbitrary bytes as an object version's claim and
// takes, finishes and releases it. Nothing may panic; an undecodable claim
// is an error, never silently replaced (that could upload a file twice).
func FuzzDecodeClaim(f *testing.F) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	full, _ := json.Marshal(claim.Claim{Key: "incoming/x/a.csv", VersionID: "v1", State: claim.Active, Owner: "o", Until: now.Add(time.Minute), Attempts: 1, UpdatedAt: now})
	for _, seed := range []string{
		string(full), `{}`, `null`, `{"state":"done","outcome":"uploaded"}`, `{"state":"released","attempts":-5}`,
		`{"state":"active","until":"0001-01-01T00:00:00Z"}`, `{"state":"???","attempts":9223372036854775807}`,
		`{"until":"not a time"}`, `[1,2]`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store := blob.NewMem()
		c := claim.New(ledger.New(store, "state/"))
		c.Now = func() time.Time { return now }
		ref := claim.Ref{Key: "incoming/x/a.csv", VersionID: "v1", Session: "c/r/i"}
		if _, err := c.Take(ctx, ref, "planter"); err != nil {
			t.Fatal(err)
		}
		keys, _ := store.List(ctx, "state/claims/")
		if len(keys) != 1 {
			t.Fatalf("claims: %v", keys)
		}
		key := keys[0]
		store.Set(key, data)

		var direct claim.Claim
		decodes := json.Unmarshal(data, &direct) == nil
		cl, err := c.Read(ctx, ref)
		if decodes != (err == nil) {
			t.Fatalf("Read: %+v, %v; json.Unmarshal ok %v", cl, err, decodes)
		}
		res, err := c.Take(ctx, ref, "fuzzer")
		if !decodes {
			if err == nil {
				t.Fatalf("an undecodable claim was taken over: %+v", res)
			}
			if !bytes.Equal(store.Data(key), data) {
				t.Fatal("an undecodable claim was overwritten")
			}
			return
		}
		if err != nil {
			if _, merr := json.Marshal(&direct); merr == nil {
				t.Fatalf("Take on a decodable claim: %v", err)
			}
			return
		}
		own := direct.State == claim.Active && direct.Owner == "fuzzer"
		held := !own && (direct.State == claim.Done || (direct.State == claim.Active && now.Before(direct.Until)))
		if res.Acquired == held {
			t.Fatalf("claim %+v: acquired %v", direct, res.Acquired)
		}
		if !res.Acquired {
			return
		}
		if !own && (res.Claim.Attempts != direct.Attempts+1 || res.Resumed != (direct.Attempts > 0)) {
			t.Fatalf("claim %+v taken as %+v", direct, res)
		}
		if err := c.Finish(ctx, ref, "fuzzer", review.Uploaded, "s"); err != nil {
			t.Fatalf("finishing a held claim: %v", err)
		}
		if err := c.Release(ctx, ref, "fuzzer"); err == nil {
			t.Fatal("a finished claim was released")
		}
		if cl, err := c.Read(ctx, ref); err != nil || cl.State != claim.Done || cl.Outcome != review.Uploaded {
			t.Fatalf("after finishing: %+v, %v", cl, err)
		}
	})
}
