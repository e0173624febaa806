%% @doc Which failures are worth another try: the one home of that rule for the plugin's
%% deliveries over the network (the backup e-mail, `emqx_guard_channel_email') and uploads
%% (the off-site copies, `emqx_guard_offsite'). It reads the core's stable reason atoms
%% (`emqx_guard_core', the NIF contract in docs/design.md); a reason not named here is for the
%% operator to fix, and a new one is not retried until it is added here.
%%
%% <ul>
%% <li>the core itself: a Rust panic or an unexpected failure (`nif_panicked', `nif_failed')
%%     may pass; a library that is not loaded, or an argument it refuses, does not;</li>
%% <li>the network, for both: `connect', `timeout';</li>
%% <li>mail: a 4xx deferral (`transient') and a broken session (`smtp'); settings, addresses,
%%     certificates, AUTH and 5xx refusals (`rejected') do not pass by waiting;</li>
%% <li>upload: the storage service's own failure (`remote'), the export changing while it was
%%     read or an object replaced meanwhile (`integrity'), a read error (`io'), every job
%%     thread taken (`busy', `thread') and a panicked job (`panicked'); credentials (`auth'),
%%     a missing bucket (`not_found'), TLS and bad settings do not.</li>
%% </ul>
%% How often and after which waits is each caller's own setting (`offsite_retry_ms', the
%% notification server's `backoff_ms').
-module(emqx_guard_retry).

-export([retryable/2]).

-export_type([what/0]).

-type what() :: mail | upload.

%% @doc Whether a failure of What with the core's Reason can succeed on a later attempt.
-spec retryable(what(), atom()) -> boolean().
retryable(What, Reason) ->
    lists:member(Reason, [nif_panicked, nif_failed, connect, timeout | passing(What)]).

passing(mail) -> [transient, smtp];
passing(upload) -> [remote, integrity, io, busy, thread, panicked].
