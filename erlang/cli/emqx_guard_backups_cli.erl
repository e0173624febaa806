%% @doc The `emqx ctl guard' commands about the backup files on this node: `backup_list',
%% `backup_verify' and `backup_prune --dry-run' (its remote part: `emqx_guard_offsite_cli').
%% Parses and prints only (`emqx_guard_backups' does the work; a failure's line is
%% `emqx_guard_outcome:format_error/1''s); called by `emqx_guard_cli', which catches and reports
%% any crash.
-module(emqx_guard_backups_cli).

-import(emqx_guard_cli, [line/1, error_reason/1]).

-export([cmd/1, usage_lines/0]).

%% How recently a file that does not verify must have been written to count as the one a running
%% backup is still writing.
-define(WRITING_WINDOW_MS, 60000).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_list", "List the backups, newest first, with size, time, verification and when checked"},
        {"guard backup_verify [<name>|--all]", "Read every backup (or the one named) in full now and record the result"},
        {"guard backup_prune --dry-run", "Show what retention would delete now (here and off-site)"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_list">>]) -> backup_list();
cmd([<<"backup_verify">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, <<"--all">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, Name]) -> backup_verify(Name);
cmd([<<"backup_prune">>, <<"--dry-run">>]) ->
    prune_dry_run(),
    %% what remote retention would delete, when a remote destination is set
    emqx_guard_offsite_cli:prune_dry_run();
cmd(_) -> not_mine.

%%--------------------------------------------------------------------

backup_list() ->
    Dir = emqx_guard_emqx:backup_dir(),
    #{backup_timezone := Zone} = emqx_guard_settings:get(),
    case emqx_guard_backups:list(Dir) of
        {ok, []} ->
            line(text("No backups in ~ts", [Dir]));
        {ok, Backups} ->
            line(text("~B backup(s) in ~ts, newest first:", [length(Backups), Dir])),
            Running = maps:get(running, emqx_guard_scheduler:status()),
            lists:foreach(fun(B) -> line(backup_line(Zone, B)) end, mark_in_progress(Running, Backups));
        {error, Why} ->
            error_reason(Why)
    end.

%% While a backup runs, an export that does not verify yet and was written to within the last
%% minute is the one EMQX is still writing: not a fault, and not worth an alarming line.
mark_in_progress(undefined, Backups) ->
    Backups;
mark_in_progress(#{started_at := _}, Backups) ->
    Recent = os:system_time(millisecond) - ?WRITING_WINDOW_MS,
    [
        case B of
            #{verified := {error, _}, mtime := MTime} when MTime >= Recent -> B#{verified => in_progress};
            _ -> B
        end
     || B <- Backups
    ].

%% One backup: name, size, time, and (not in the dry run of prune) its verdict and when it was
%% reached.
backup_line(Zone, B = #{name := Name, size := Size, mtime := MTime}) ->
    Columns = [Name, emqx_guard_render:size(Size), emqx_guard_render:in_zone(Zone, MTime)],
    Checked =
        case B of
            #{checked_at := At} -> [" (checked ", emqx_guard_render:in_zone(Zone, At), ")"];
            _ -> []
        end,
    Verified =
        case maps:get(verified, B, undefined) of
            ok -> [[<<"verified">> | Checked]];
            {error, Why} -> [[text("NOT VERIFIED: ~ts", [emqx_guard_outcome:format_error(Why)]) | Checked]];
            in_progress -> [<<"being written by the running backup">>];
            undefined -> []
        end,
    iolist_to_binary(["  ", lists:join("  ", Columns ++ Verified)]).

%% A full read of each file, whatever the records say (like `restic check --read-data'): finds
%% what a record cannot, e.g. a disk that changed bytes without changing size or time.
backup_verify(Which) ->
    Dir = emqx_guard_emqx:backup_dir(),
    case emqx_guard_backups:verify_all(Dir, Which) of
        {ok, []} ->
            line(text("No backups in ~ts", [Dir]));
        {ok, Results} ->
            Bad = length([R || {_, {error, _}} = R <- Results]),
            line(text("Read ~B backup(s) in ~ts in full: ~B verified, ~B NOT VERIFIED", [
                length(Results), Dir, length(Results) - Bad, Bad
            ])),
            lists:foreach(
                fun
                    ({Name, ok}) -> line(["  ", Name, "  verified"]);
                    ({Name, {error, Why}}) -> line(["  ", Name, "  NOT VERIFIED: ", emqx_guard_outcome:format_error(Why)])
                end,
                Results
            );
        {error, Why} ->
            error_reason(Why)
    end.

prune_dry_run() ->
    Dir = emqx_guard_emqx:backup_dir(),
    #{backup_keep := Keep, backup_timezone := Zone} = emqx_guard_settings:get(),
    case emqx_guard_backups:plan(Dir, Keep) of
        {ok, #{delete := Doomed, skipped_unverified := Broken}} ->
            case Doomed of
                [] ->
                    line(text("Nothing to delete: retention keeps the newest ~B backup(s) in ~ts", [Keep, Dir]));
                _ ->
                    line(text(
                        "Retention (keep the newest ~B) would delete ~B backup(s) from ~ts (dry run, nothing deleted):",
                        [Keep, length(Doomed), Dir]
                    )),
                    lists:foreach(fun(B) -> line(backup_line(Zone, B)) end, Doomed)
            end,
            print_unverified(Zone, Broken);
        {error, Why} ->
            error_reason(Why)
    end.

%% Newer exports that do not verify: retention neither counts nor deletes them.
print_unverified(_Zone, []) ->
    ok;
print_unverified(Zone, Broken) ->
    line(text("Not counted as backups and left in place (~B do not verify):", [length(Broken)])),
    lists:foreach(fun(B = #{error := Why}) -> line(backup_line(Zone, B#{verified => {error, Why}})) end, Broken).


text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
