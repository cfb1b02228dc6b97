package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PlainEnv is set in the environment of the plain copy client process;
// its value is the process's PlainConfig as JSON.
const PlainEnv = "BYODROP_BENCH_PLAIN"

// PlainConfig is what the plain copy client process needs: the S3 server
// and the client settings, the uploadFile URL, the token, and the Graph
// emulator's CA.
type PlainConfig struct {
	S3Endpoint, Region, AccessKey, SecretKey string
	Checksums                                Checksums
	UploadURL, Token, CAFile                 string
}

// plainRequest is one copy asked of the process, a line of JSON on its
// standard input; it answers a line: "ok <bytes>" or "error <message>".
type plainRequest struct {
	Object Object
	Name   string
}

// ServePlainCopies is the plain copy client process: it makes the copies
// asked on in, one at a time, with clients it keeps (warm connections, as
// a warm bootstrap keeps its own), and answers each on out. Being a
// process of its own, its CPU time is the plain copy client's alone, read
// like the bootstrap's from /proc.
func ServePlainCopies(in io.Reader, out io.Writer, cfg PlainConfig) error {
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", cfg.CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	hc := &http.Client{Transport: tr}
	opts := s3.Options{
		Region: cfg.Region, BaseEndpoint: aws.String(cfg.S3Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Checksums == AWSDefault {
		opts.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		opts.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	}
	s3c := s3.New(opts)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var req plainRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return err
		}
		n, err := PlainCopy(context.Background(), s3c, req.Object, hc, cfg.UploadURL, cfg.Token, req.Name)
		if err != nil {
			fmt.Fprintf(out, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(out, "ok %d\n", n)
	}
	return sc.Err()
}

// plainProcess is a running plain copy client process.
type plainProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startPlain starts the plain copy client process with self, this
// program, which must call ServePlainCopies when PlainEnv is set.
func startPlain(ctx context.Context, self string, cfg PlainConfig) (*plainProcess, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), PlainEnv+"="+string(data))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the plain copy client: %w", err)
	}
	return &plainProcess{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

// copy asks for one copy and returns its wall time and the process's CPU
// time during it.
func (p *plainProcess) copy(o Object, name string) (wall, cpu time.Duration, err error) {
	data, err := json.Marshal(plainRequest{Object: o, Name: name})
	if err != nil {
		return 0, 0, err
	}
	cpu0, err := ProcessCPU(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, err := fmt.Fprintf(p.in, "%s\n", data); err != nil {
		return 0, 0, fmt.Errorf("plain copy client: %w", err)
	}
	if !p.out.Scan() {
		return 0, 0, fmt.Errorf("plain copy client: no answer (%v)", p.out.Err())
	}
	wall = time.Since(t0)
	if answer := p.out.Text(); answer != fmt.Sprintf("ok %d", o.Size) {
		return 0, 0, fmt.Errorf("plain copy client: %s", answer)
	}
	cpu1, err := ProcessCPU(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return wall, cpu1 - cpu0, nil
}

// close ends the process: its input closed, it returns.
func (p *plainProcess) close() {
	p.in.Close()
	_ = p.cmd.Wait()
}
