// Command tlogcheck verifies transparency-log artefacts produced by
// PatientVault (the Swift side) with Go's reference implementations,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog.
//
// Usage:
//
//	tlogcheck input.json
//
// The input is a JSON object (unknown fields are rejected):
//
//	{
//	  "verifierKey":  "<name>+<8 hex>+<base64(0x01 || Ed25519 public key)>",
//	  "cosignerKeys": ["<name>+<8 hex>+<base64(0x04 || Ed25519 public key)>"],  // optional
//	  "checkpoints":  ["<signed note: checkpoint text, blank line, signature lines>"],
//	  "inclusion":    [{"checkpoint": 0, "index": 3, "leafData": "<base64>", "proof": ["<base64 hash>"]}],
//	  "consistency":  [{"old": 0, "new": 1, "proof": ["<base64 hash>"]}],
//	  "proofTexts":   ["<c2sp.org/tlog-proof@v1 text>"],
//	  "leafDataForProofTexts": ["<base64>"]
//	}
//
// leafData is the record itself: the leaf hash is tlog.RecordHash(leafData),
// that is SHA-256(0x00 || leafData). Proof hashes are listed in RFC 6962 /
// RFC 9162 order (leaf side first, root side last), which is also the order
// of tlog.RecordProof and tlog.TreeProof.
//
// Every check prints one line. The first failure prints "FAIL ..." on
// standard error and exits with status 1; bad usage or unreadable input
// exits with status 2.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusionCheck struct {
	Checkpoint int      `json:"checkpoint"`
	Index      int64    `json:"index"`
	LeafData   string   `json:"leafData"`
	Proof      []string `json:"proof"`
}

type consistencyCheck struct {
	Old   int      `json:"old"`
	New   int      `json:"new"`
	Proof []string `json:"proof"`
}

type input struct {
	VerifierKey           string             `json:"verifierKey"`
	CosignerKeys          []string           `json:"cosignerKeys"`
	Checkpoints           []string           `json:"checkpoints"`
	Inclusion             []inclusionCheck   `json:"inclusion"`
	Consistency           []consistencyCheck `json:"consistency"`
	ProofTexts            []string           `json:"proofTexts"`
	LeafDataForProofTexts []string           `json:"leafDataForProofTexts"`
}

// checkpoint is a parsed c2sp.org/tlog-checkpoint note text.
type checkpoint struct {
	Origin     string
	Size       int64
	Root       tlog.Hash
	Extensions []string
}

// emptyRoot is the RFC 6962 hash of the empty tree, SHA-256 of nothing.
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck input.json")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlogcheck:", err)
		os.Exit(2)
	}
	var in input
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: %s: invalid input JSON: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	if err := run(&in); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL", err)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

func ok(format string, args ...interface{}) {
	fmt.Printf("ok   "+format+"\n", args...)
}

func run(in *input) error {
	logVerifier, err := note.NewVerifier(in.VerifierKey)
	if err != nil {
		return fmt.Errorf("verifierKey %q: note.NewVerifier: %v", in.VerifierKey, err)
	}
	ok("verifierKey %s+%08x (Ed25519, alg 0x01)", logVerifier.Name(), logVerifier.KeyHash())

	verifiers := []note.Verifier{logVerifier}
	var cosigners []note.Verifier
	for i, k := range in.CosignerKeys {
		v, err := newCosignatureVerifier(k)
		if err != nil {
			return fmt.Errorf("cosignerKeys[%d] %q: %v", i, k, err)
		}
		ok("cosignerKeys[%d] %s+%08x (Ed25519 cosignature/v1, alg 0x04)", i, v.Name(), v.KeyHash())
		cosigners = append(cosigners, v)
		verifiers = append(verifiers, v)
	}
	known := note.VerifierList(verifiers...)

	open := func(what string, msg string) (checkpoint, error) {
		n, err := note.Open([]byte(msg), known)
		if err != nil {
			return checkpoint{}, fmt.Errorf("%s: note.Open: %v", what, describeOpenError(err))
		}
		if !signedBy(n, logVerifier) {
			return checkpoint{}, fmt.Errorf("%s: no valid signature from the log key %s+%08x", what, logVerifier.Name(), logVerifier.KeyHash())
		}
		for _, c := range cosigners {
			if !signedBy(n, c) {
				return checkpoint{}, fmt.Errorf("%s: no valid cosignature from %s+%08x", what, c.Name(), c.KeyHash())
			}
		}
		c, err := parseCheckpoint(n.Text)
		if err != nil {
			return checkpoint{}, fmt.Errorf("%s: %v (note text %q)", what, err, n.Text)
		}
		if c.Origin != logVerifier.Name() {
			fmt.Printf("warn %s: origin %q differs from the log key name %q (allowed, but the spec says SHOULD match)\n", what, c.Origin, logVerifier.Name())
		}
		return c, nil
	}

	cps := make([]checkpoint, len(in.Checkpoints))
	for i, msg := range in.Checkpoints {
		what := fmt.Sprintf("checkpoints[%d]", i)
		c, err := open(what, msg)
		if err != nil {
			return err
		}
		cps[i] = c
		ok("%s: signature(s) verified; origin=%q size=%d root=%s extensions=%d", what, c.Origin, c.Size, c.Root, len(c.Extensions))
	}

	for i, ic := range in.Inclusion {
		what := fmt.Sprintf("inclusion[%d]", i)
		if ic.Checkpoint < 0 || ic.Checkpoint >= len(cps) {
			return fmt.Errorf("%s: checkpoint %d is out of range (have %d checkpoints)", what, ic.Checkpoint, len(cps))
		}
		c := cps[ic.Checkpoint]
		leaf, err := decodeB64(ic.LeafData)
		if err != nil {
			return fmt.Errorf("%s: leafData: %v", what, err)
		}
		proof, err := decodeHashes(ic.Proof)
		if err != nil {
			return fmt.Errorf("%s: proof: %v", what, err)
		}
		if ic.Index < 0 || ic.Index >= c.Size {
			return fmt.Errorf("%s: index %d is not inside checkpoint %d (size %d)", what, ic.Index, ic.Checkpoint, c.Size)
		}
		rh := tlog.RecordHash(leaf)
		if err := tlog.CheckRecord(tlog.RecordProof(proof), c.Size, c.Root, ic.Index, rh); err != nil {
			return fmt.Errorf("%s: tlog.CheckRecord(index %d, size %d, %d hashes, leaf hash %s): %v", what, ic.Index, c.Size, len(proof), rh, err)
		}
		ok("%s: leaf %d in tree of size %d (checkpoint %d), %d hashes", what, ic.Index, c.Size, ic.Checkpoint, len(proof))
	}

	for i, cc := range in.Consistency {
		what := fmt.Sprintf("consistency[%d]", i)
		if cc.Old < 0 || cc.Old >= len(cps) || cc.New < 0 || cc.New >= len(cps) {
			return fmt.Errorf("%s: old %d / new %d out of range (have %d checkpoints)", what, cc.Old, cc.New, len(cps))
		}
		o, n := cps[cc.Old], cps[cc.New]
		if o.Origin != n.Origin {
			return fmt.Errorf("%s: checkpoints have different origins %q and %q", what, o.Origin, n.Origin)
		}
		proof, err := decodeHashes(cc.Proof)
		if err != nil {
			return fmt.Errorf("%s: proof: %v", what, err)
		}
		if o.Size > n.Size {
			return fmt.Errorf("%s: old size %d is larger than new size %d", what, o.Size, n.Size)
		}
		if o.Size == 0 {
			// tlog.CheckTree only accepts an old size of at least 1. Every
			// tree extends the empty one, so the only sensible proof is empty.
			if len(proof) != 0 {
				return fmt.Errorf("%s: old size is 0, so the proof must be empty, but it has %d hashes", what, len(proof))
			}
			ok("%s: %d -> %d trivially consistent (old tree empty; tlog.CheckTree not applicable)", what, o.Size, n.Size)
			continue
		}
		if err := tlog.CheckTree(tlog.TreeProof(proof), n.Size, n.Root, o.Size, o.Root); err != nil {
			return fmt.Errorf("%s: tlog.CheckTree(old size %d, new size %d, %d hashes): %v", what, o.Size, n.Size, len(proof), err)
		}
		ok("%s: %d -> %d consistent (checkpoints %d -> %d), %d hashes", what, o.Size, n.Size, cc.Old, cc.New, len(proof))
	}

	if len(in.ProofTexts) != len(in.LeafDataForProofTexts) {
		return fmt.Errorf("proofTexts has %d entries but leafDataForProofTexts has %d", len(in.ProofTexts), len(in.LeafDataForProofTexts))
	}
	for i, text := range in.ProofTexts {
		what := fmt.Sprintf("proofTexts[%d]", i)
		leaf, err := decodeB64(in.LeafDataForProofTexts[i])
		if err != nil {
			return fmt.Errorf("leafDataForProofTexts[%d]: %v", i, err)
		}
		p, err := parseProofText(text)
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		c, err := open(what+" checkpoint", p.Checkpoint)
		if err != nil {
			return err
		}
		if p.Index >= c.Size {
			return fmt.Errorf("%s: index %d is not inside the embedded checkpoint (size %d)", what, p.Index, c.Size)
		}
		rh := tlog.RecordHash(leaf)
		if err := tlog.CheckRecord(p.Proof, c.Size, c.Root, p.Index, rh); err != nil {
			return fmt.Errorf("%s: tlog.CheckRecord(index %d, size %d, %d hashes, leaf hash %s): %v", what, p.Index, c.Size, len(p.Proof), rh, err)
		}
		extra := "no extra line"
		if p.HasExtra {
			extra = fmt.Sprintf("extra %d bytes", len(p.Extra))
		}
		ok("%s: tlog-proof@v1 leaf %d in %q size %d, %d hashes, %s", what, p.Index, c.Origin, c.Size, len(p.Proof), extra)
	}
	return nil
}

func signedBy(n *note.Note, v note.Verifier) bool {
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			return true
		}
	}
	return false
}

func describeOpenError(err error) string {
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		var keys []string
		for _, s := range unverified.Note.UnverifiedSigs {
			keys = append(keys, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		}
		return fmt.Sprintf("%v (signatures present only from unknown keys: %s)", err, strings.Join(keys, ", "))
	}
	return err.Error()
}

// decodeB64 decodes standard, padded base64 (RFC 4648 section 4) and
// rejects anything Go would tolerate but is not canonical: embedded
// CR/LF and non-zero trailing bits.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("base64 %q contains a line break", s)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64 %q is not canonical standard padded base64: %v", s, err)
	}
	return b, nil
}

func decodeHash(s string) (tlog.Hash, error) {
	b, err := decodeB64(s)
	if err != nil {
		return tlog.Hash{}, err
	}
	if len(b) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("hash %q decodes to %d bytes, want %d", s, len(b), tlog.HashSize)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h, nil
}

func decodeHashes(list []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(list))
	for i, s := range list {
		h, err := decodeHash(s)
		if err != nil {
			return nil, fmt.Errorf("hash %d: %v", i, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// parseDecimal parses a non-negative decimal with no sign and no leading
// zeros (except "0" itself), as both the checkpoint and proof specs require.
func parseDecimal(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical non-negative decimal", s)
	}
	return n, nil
}

// parseCheckpoint parses checkpoint note text per c2sp.org/tlog-checkpoint:
// origin, tree size, base64 root hash, then optional non-empty extension
// lines, each line ending in a newline.
func parseCheckpoint(text string) (checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return checkpoint{}, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return checkpoint{}, fmt.Errorf("checkpoint text has %d lines, want at least 3", len(lines))
	}
	var c checkpoint
	c.Origin = lines[0]
	if c.Origin == "" {
		return checkpoint{}, errors.New("checkpoint origin line is empty")
	}
	n, err := parseDecimal(lines[1])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint tree size: %v", err)
	}
	c.Size = n
	c.Root, err = decodeHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root hash: %v", err)
	}
	for i, e := range lines[3:] {
		if e == "" {
			return checkpoint{}, fmt.Errorf("checkpoint extension line %d is empty", i)
		}
	}
	c.Extensions = lines[3:]
	if c.Size == 0 && c.Root != emptyRoot {
		return checkpoint{}, fmt.Errorf("checkpoint of size 0 has root %s, but the RFC 6962 empty-tree hash is %s (SHA-256 of nothing)", c.Root, emptyRoot)
	}
	return c, nil
}

type proofText struct {
	HasExtra   bool
	Extra      []byte
	Index      int64
	Proof      tlog.RecordProof
	Checkpoint string // the signed checkpoint note, verbatim
}

const proofHeader = "c2sp.org/tlog-proof@v1"

// parseProofText parses c2sp.org/tlog-proof@v1:
//
//	c2sp.org/tlog-proof@v1
//	extra <base64>            (optional)
//	index <decimal>
//	<base64 hash>             (zero or more, leaf side first)
//	                          (empty line)
//	<signed checkpoint note, verbatim>
func parseProofText(text string) (proofText, error) {
	var p proofText
	line, rest, found := strings.Cut(text, "\n")
	if !found || line != proofHeader {
		return p, fmt.Errorf("first line is %q, want %q", line, proofHeader)
	}
	line, rest, found = strings.Cut(rest, "\n")
	if !found {
		return p, errors.New("truncated after the header line")
	}
	if strings.HasPrefix(line, "extra ") {
		extra, err := decodeB64(strings.TrimPrefix(line, "extra "))
		if err != nil {
			return p, fmt.Errorf("extra line: %v", err)
		}
		p.HasExtra, p.Extra = true, extra
		line, rest, found = strings.Cut(rest, "\n")
		if !found {
			return p, errors.New("truncated after the extra line")
		}
	}
	if !strings.HasPrefix(line, "index ") {
		return p, fmt.Errorf("line %q: want \"index <n>\"", line)
	}
	idx, err := parseDecimal(strings.TrimPrefix(line, "index "))
	if err != nil {
		return p, fmt.Errorf("index line: %v", err)
	}
	p.Index = idx
	for {
		line, rest, found = strings.Cut(rest, "\n")
		if !found {
			return p, errors.New("no empty line between the proof hashes and the checkpoint")
		}
		if line == "" {
			break
		}
		h, err := decodeHash(line)
		if err != nil {
			return p, fmt.Errorf("proof hash line %d: %v", len(p.Proof), err)
		}
		p.Proof = append(p.Proof, h)
	}
	if rest == "" {
		return p, errors.New("no checkpoint after the empty line")
	}
	p.Checkpoint = rest
	return p, nil
}

// cosignatureVerifier verifies Ed25519 cosignature/v1 signatures
// (c2sp.org/tlog-cosignature). x/mod's note.NewVerifier only knows
// algorithm 0x01, so this implements note.Verifier itself.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

const algCosignatureV1 = 0x04

func newCosignatureVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("want <name>+<8 hex digits>+<base64 key>")
	}
	name, hash16, key64 := parts[0], parts[1], parts[2]
	if name == "" || strings.ContainsAny(name, "+") || strings.IndexFunc(name, unicode.IsSpace) >= 0 || !utf8.ValidString(name) {
		return nil, fmt.Errorf("invalid key name %q", name)
	}
	if len(hash16) != 8 {
		return nil, fmt.Errorf("key hash %q is not 8 hex digits", hash16)
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("key hash %q: %v", hash16, err)
	}
	key, err := decodeB64(key64)
	if err != nil {
		return nil, err
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, fmt.Errorf("key material must be 0x04 followed by 32 bytes, got %d bytes starting %#x", len(key), key[:1])
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	if want := binary.BigEndian.Uint32(h[:4]); uint32(hash) != want {
		return nil, fmt.Errorf("key hash %08x does not match SHA-256(name || 0x0A || 0x04 || key)[:4] = %08x", hash, want)
	}
	return &cosignatureVerifier{name: name, hash: uint32(hash), key: ed25519.PublicKey(key[1:])}, nil
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify gets the signature with the 4-byte key hash already removed:
// an 8-byte big-endian timestamp followed by the 64-byte Ed25519 signature
// over "cosignature/v1\ntime <timestamp>\n" || note text.
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > 1<<63-1 {
		return false
	}
	signed := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, msg)
	return ed25519.Verify(v.key, []byte(signed), sig[8:])
}
