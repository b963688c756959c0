//go:build unix

package log

import "syscall"

// openFlags are the flags Open adds to O_WRONLY|O_APPEND|O_CREAT. Go sets
// O_CLOEXEC on every file it opens; it is named here to say so.
const openFlags = syscall.O_CLOEXEC | syscall.O_NOFOLLOW
