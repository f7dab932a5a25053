// Command ledger-check verifies every wallet chain: each balance equals the sum of its
// entries and every entry's running totals are consistent. It exits 1 on a mismatch.
//
//	CODEEXEC_MONGO_URI=mongodb://… ledger-check [-account userId] [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/mongoconn"
)

func main() {
	os.Exit(run())
}

func run() int {
	account := flag.String("account", "", "check only this account")
	verbose := flag.Bool("v", false, "print every account's totals")
	flag.Parse()
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger-check:", err)
		return 2
	}
	if cfg.MongoURI == "" {
		fmt.Fprintln(os.Stderr, "ledger-check: CODEEXEC_MONGO_URI is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	db, closeDB, err := mongoconn.Open(cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger-check:", err)
		return 2
	}
	defer closeDB()
	store := wallet.NewStore(db, wallet.Options{})

	var sums []wallet.Summary
	var problems []error
	if *account != "" {
		sum, err := store.Verify(ctx, *account)
		var mm *wallet.MismatchError
		switch {
		case errors.As(err, &mm):
			problems = append(problems, err)
		case err != nil:
			fmt.Fprintln(os.Stderr, "ledger-check:", err)
			return 2
		}
		sums = append(sums, sum)
	} else {
		sums, problems, err = store.VerifyAll(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ledger-check:", err)
			return 2
		}
	}
	if *verbose {
		for _, s := range sums {
			fmt.Printf("%s\tentries=%d\tavailable=%d\theld=%d\n", s.Account, s.Entries, s.AvailableMicros, s.HeldMicros)
		}
	}
	for _, p := range problems {
		fmt.Println("MISMATCH", p)
	}
	fmt.Printf("%d accounts checked, %d with mismatches\n", len(sums), len(problems))
	if len(problems) > 0 {
		return 1
	}
	return 0
}
