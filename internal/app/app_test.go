package app_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/app"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

func settings(t *testing.T, env map[string]string) config.Settings {
	t.Helper()
	base := map[string]string{"AZURE_TENANT_ID": "0e0e0e0e-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "0c0c0c0c-0000-4000-8000-00000000bbbb", "AZURE_CLIENT_SECRET": "s"}
	for k, v := range env {
		base[k] = v
	}
	s, err := config.FromEnv(func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const route = `{"catalogId":"6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c","resourceId":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","source":"Badges"}`

func TestRoutesObjectIsReadAtStartUpAndMergedWithRoutes(t *testing.T) {
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	put := func(key, body string) {
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte(body))}); err != nil {
			t.Fatal(err)
		}
	}
	put("state/routes.json", `{"doors":`+route+`,"legacy":`+route+`}`)
	put("state/dup.json", `{"badges":`+route+`}`)
	put("state/bad.json", `{"x":{"catalogId":"nope","resourceId":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"}}`)

	s := settings(t, map[string]string{"STATE_BUCKET": bucket, "ROUTES": `{"badges":` + route + `}`, "ROUTES_OBJECT": "state/routes.json"})
	if err := app.LoadRoutesObject(ctx, srv.Client(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Routes) != 3 || s.Routes["doors"].Source != "Badges" || s.Routes["badges"].CatalogID == "" {
		t.Fatalf("routes = %+v; want badges from ROUTES and doors, legacy from the object", s.Routes)
	}
	for _, tt := range []struct{ key, want string }{
		{"state/dup.json", `route "badges" is also in ROUTES`},
		{"state/bad.json", "catalogId must be a GUID"},
		{"state/missing.json", "ROUTES_OBJECT: reading s3://" + bucket + "/state/missing.json"},
	} {
		s := settings(t, map[string]string{"STATE_BUCKET": bucket, "ROUTES": `{"badges":` + route + `}`, "ROUTES_OBJECT": tt.key})
		err := app.LoadRoutesObject(ctx, srv.Client(), &s)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ROUTES_OBJECT") {
			t.Errorf("%s: error %v; want one naming ROUTES_OBJECT and saying %q", tt.key, err, tt.want)
		}
	}
}

func TestRoutesObjectMustBeInTheStatePrefixOfAStateBucket(t *testing.T) {
	for _, env := range []map[string]string{
		{"ROUTES_OBJECT": "state/routes.json"},
		{"STATE_BUCKET": "b", "ROUTES_OBJECT": "incoming/routes.json"},
	} {
		base := map[string]string{"AZURE_TENANT_ID": "0e0e0e0e-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "0c0c0c0c-0000-4000-8000-00000000bbbb", "AZURE_CLIENT_SECRET": "s"}
		for k, v := range env {
			base[k] = v
		}
		if _, err := config.FromEnv(func(k string) string { return base[k] }); err == nil || !strings.Contains(err.Error(), "ROUTES_OBJECT") {
			t.Errorf("%v: error %v; want one naming ROUTES_OBJECT", env, err)
		}
	}
}
