%% @doc The steps of a long command as the operator reads them while they run
%% (`emqx_guard_steps'): one line per event, `<step>: ...', printed from the command's own
%% process as each one comes: `export: started (EMQX data export)', EMQX's own lines of its
%% export as EMQX words them (`export: Exporting cluster configuration...'), `verify: done in
%% 1.2 s: verified, 48.0 MiB at 40.0 MiB/s', a long step's progress at most once a second. For a
%% backup run, which runs in the scheduler's worker, `follow/2' receives the events the scheduler
%% sends on (`emqx_guard_scheduler:run_now/1') until the run's end.
-module(emqx_guard_steps_cli).

-export([print/1, line/1, follow/2]).

%% @doc Prints the line of Event (`line/1').
-spec print(emqx_guard_steps:event()) -> ok.
print(Event) ->
    emqx_guard_cli:line(line(Event)).

%% @doc Waits for the events of the run the scheduler (monitored as MRef) sends as
%% `{emqx_guard_step, Ref, Event}', printing each as it comes, until `{finished, Result}' (what
%% `emqx_guard_scheduler:run_now/0' answers), which it returns; `{stopped, Why}' when the
%% scheduler went away first.
-spec follow(reference(), reference()) -> {finished, emqx_guard_scheduler:run_now_result()} | {stopped, term()}.
follow(Ref, MRef) ->
    receive
        {emqx_guard_step, Ref, {finished, Result}} ->
            demonitor(MRef, [flush]),
            {finished, Result};
        {emqx_guard_step, Ref, Event} ->
            print(Event),
            follow(Ref, MRef);
        {'DOWN', MRef, process, _, Why} ->
            {stopped, Why}
    end.

%% @doc The line of one event for people.
-spec line(emqx_guard_steps:event()) -> binary().
line({line, Step, Text}) ->
    <<(name(Step))/binary, ": ", Text/binary>>;
line({failed, Step, #{duration_ms := Ms, error := Error}}) ->
    text("~ts: FAILED after ~ts: ~ts", [name(Step), emqx_guard_render:duration_ms(Ms), Error]);
line({warned, Step, #{warning := Warning}}) ->
    text("~ts: warning: ~ts", [name(Step), Warning]);
line({started, export, _}) ->
    <<"export: started (EMQX data export)">>;
line({progress, export, #{elapsed_ms := Ms, written := Bytes}}) ->
    text("export: running for ~ts, ~ts written", [emqx_guard_render:duration_ms(Ms), emqx_guard_render:size(Bytes)]);
line({done, export, #{duration_ms := Ms, file := File, size := Size}}) ->
    text("export: done in ~ts: ~ts (~ts)", [emqx_guard_render:duration_ms(Ms), File, emqx_guard_render:size(Size)]);
line({done, protect, #{mode := Mode}}) ->
    text("protect: done: mode ~ts (readable by EMQX's user only)", [Mode]);
line({started, verify, #{file := File, size := Size, index := I, count := N}}) ->
    text("verify: reading ~ts (~B of ~B, ~ts) in full", [File, I, N, emqx_guard_render:size(Size)]);
line({started, verify, #{size := Size}}) ->
    text("verify: reading ~ts in full", [emqx_guard_render:size(Size)]);
line({progress, verify, #{elapsed_ms := Ms} = P}) ->
    text("verify: ~tsstill reading after ~ts", [file_prefix(P), emqx_guard_render:duration_ms(Ms)]);
line({done, verify, #{duration_ms := Ms, size := Size, result := ok} = D}) ->
    text("verify: done in ~ts: ~tsverified, ~ts at ~ts", [
        emqx_guard_render:duration_ms(Ms), file_prefix(D), emqx_guard_render:size(Size), rate(Size, Ms)
    ]);
line({done, verify, #{duration_ms := Ms, result := {error, Why}} = D}) ->
    text("verify: done in ~ts: ~tsNOT VERIFIED: ~ts", [emqx_guard_render:duration_ms(Ms), file_prefix(D), emqx_guard_outcome:format_error(Why)]);
line({done, plugins, #{file := File, count := N, too_large := []}}) ->
    text("plugins: done: ~B plugin(s) and this plugin's settings saved beside it in ~ts", [N, File]);
line({done, plugins, #{file := File, count := N, too_large := Large}}) ->
    text("plugins: done: ~B plugin(s) and this plugin's settings saved beside it in ~ts (by name and hash only, "
         "larger than the limit: ~ts)", [N, File, lists:join(", ", Large)]);
line({started, prune, #{policy := <<"last=", _/binary>>, keep := Keep}}) ->
    text("prune: started: keeps the newest ~B that verify", [Keep]);
line({started, prune, #{policy := Policy}}) ->
    text("prune: started: keeps what \"~ts\" keeps of the backups that verify", [Policy]);
line({started, prune, #{keep := Keep}}) ->
    text("prune: started: keeps the newest ~B that verify", [Keep]);
line({progress, prune, #{checked := C, checked_bytes := CB, remaining := R, remaining_bytes := RB}}) ->
    text("prune: read ~B of ~B file(s) it had no record of (~ts of ~ts)", [
        C, C + R, emqx_guard_render:size(CB), emqx_guard_render:size(CB + RB)
    ]);
line({done, prune, #{duration_ms := Ms, deleted := 0}}) ->
    text("prune: done in ~ts: nothing to delete", [emqx_guard_render:duration_ms(Ms)]);
line({done, prune, #{duration_ms := Ms, deleted := N}}) ->
    text("prune: done in ~ts: ~B old backup(s) deleted", [emqx_guard_render:duration_ms(Ms), N]);
line({done, copy, #{to := []}}) ->
    <<"copy: no other running core node to copy to">>;
line({done, copy, #{to := Nodes}}) ->
    text("copy: handed over: the copies to ~ts follow after the run", [lists:join(", ", [atom_to_list(N) || N <- Nodes])]);
line({done, offsite, #{destination := Where}}) ->
    text("off-site: queued for upload to ~ts", [Where]);
line({started, download, #{object := Object, size := Size, encrypted := Encrypted, destination := Where}}) ->
    text("download: ~ts (~ts~ts) from ~ts", [Object, emqx_guard_render:size(Size), encrypted(Encrypted), Where]);
line({started, download, #{name := Name, destination := Where}}) ->
    text("download: ~ts from ~ts", [Name, Where]);
line({progress, download, #{phase := downloading, bytes := Bytes, total := Total}}) when is_integer(Total), Total > 0 ->
    text("download: ~ts of ~ts (~B%)", [emqx_guard_render:size(Bytes), emqx_guard_render:size(Total), Bytes * 100 div Total]);
line({progress, download, #{phase := downloading, bytes := Bytes}}) ->
    text("download: ~ts so far", [emqx_guard_render:size(Bytes)]);
line({progress, download, #{phase := checking, elapsed_ms := Ms}}) ->
    text("download: checking and verifying (~ts so far)", [emqx_guard_render:duration_ms(Ms)]);
line({done, download, #{duration_ms := Ms, size := Size}}) ->
    text("download: done in ~ts: downloaded, checked and verified, ~ts at ~ts", [
        emqx_guard_render:duration_ms(Ms), emqx_guard_render:size(Size), rate(Size, Ms)
    ]);
line({Phase, Step, Facts}) ->
    %% an event of a step this version has no words for (a later job's): said plainly
    text("~ts: ~ts ~0tP", [name(Step), Phase, Facts, 8]).

name(offsite) -> <<"off-site">>;
name(Step) -> atom_to_binary(Step).

file_prefix(#{file := File}) -> <<File/binary, ": ">>;
file_prefix(_) -> <<>>.

encrypted(true) -> <<", encrypted">>;
encrypted(false) -> <<>>.

%% Bytes read in Ms as a rate: `40.0 MiB/s'.
rate(Bytes, Ms) ->
    <<(emqx_guard_render:size(Bytes * 1000 div max(Ms, 1)))/binary, "/s">>.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
