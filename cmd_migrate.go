package main

import "github.com/urfave/cli/v2"

func migrateCommand() *cli.Command {
	return &cli.Command{Name: "migrate", Usage: "migrate legacy lock directories (not yet built)",
		Hidden: true,
		Action: func(*cli.Context) error { return &exitError{code: 73, msg: "migrate: not yet built"} }}
}
