"""The main views: Instruments, Protocols, Run, Results."""
