//go:build !unix

package log

// openFlags are the flags Open adds to O_WRONLY|O_APPEND|O_CREAT. This system
// has no O_NOFOLLOW, so a symbolic link at the path is followed.
const openFlags = 0
