package main

import "github.com/urfave/cli/v2"

func hookCommand() *cli.Command {
	return &cli.Command{Name: "hook", Usage: "Stop-hook entry (not yet built)", Hidden: true,
		Action: func(*cli.Context) error { return &exitError{code: 1, msg: "hook: not yet built"} }}
}
