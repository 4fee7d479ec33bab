//go:build !nolibp2p

// The p2p transport's identity: the node's Ed25519 key, kept in the data
// directory, whose peer ID is the node's name.

package mesh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// p2pID is a node's libp2p identity.
type p2pID struct {
	key crypto.PrivKey
	id  peer.ID
}

// p2pIdentity loads (or creates) the Ed25519 key in DataDir and sets the
// node name to its peer ID: on this profile a node cannot claim another's
// name, since every connection proves the key behind the ID.
func p2pIdentity(cfg *Config, log *slog.Logger) (any, error) {
	var key crypto.PrivKey
	if cfg.DataDir == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		log.Warn("p2p: no data directory; this node's identity (peer ID) will change on restart")
		key = k
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
		}
		path := filepath.Join(cfg.DataDir, identityFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			k, err := crypto.UnmarshalPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("p2p identity file %s is corrupt (%v): restore it from a backup, or remove it to start as a new node with a new peer ID", path, err)
			}
			if k.Type() != crypto.Ed25519 {
				return nil, fmt.Errorf("p2p identity file %s holds a %v key, not Ed25519: remove it to start as a new node", path, k.Type())
			}
			key = k
		case errors.Is(err, os.ErrNotExist):
			k, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				return nil, err
			}
			raw, err := crypto.MarshalPrivateKey(k)
			if err != nil {
				return nil, err
			}
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, raw, 0o600); err != nil {
				return nil, fmt.Errorf("write p2p identity file: %w", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return nil, fmt.Errorf("write p2p identity file: %w", err)
			}
			key = k
		default:
			return nil, fmt.Errorf("p2p identity file %s: %w", path, err)
		}
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if cfg.NodeName != "" && cfg.NodeName != id.String() {
		log.Info("p2p: the node name is the peer ID on this profile", "given", cfg.NodeName, "peer_id", id.String())
		if cfg.Tags == nil {
			cfg.Tags = map[string]string{}
		}
		if _, ok := cfg.Tags["alias"]; !ok && len(cfg.NodeName) <= 64 {
			cfg.Tags["alias"] = cfg.NodeName
		}
	}
	cfg.NodeName = id.String()
	return &p2pID{key: key, id: id}, nil
}
