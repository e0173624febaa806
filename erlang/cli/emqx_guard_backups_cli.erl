%% @doc The `emqx ctl guard' commands about the backup files on this node: `backup_list' (pinned
%% backups marked) and `backup_verify' (retention's commands: `emqx_guard_retention_cli').
%% Parses and prints only (`emqx_guard_backups' does the work; a failure's line is
%% `emqx_guard_outcome:format_error/1''s); called by `emqx_guard_cli', which catches and reports
%% any crash.
-module(emqx_guard_backups_cli).

-import(emqx_guard_cli, [line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, backup_line/2]).

%% How recently a file that does not verify must have been written to count as the one a running
%% backup is still writing.
-define(WRITING_WINDOW_MS, 60000).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_list", "List the backups, newest first, with size, time, verification, when checked and pins"},
        {"guard backup_verify [<name>|--all]", "Read every backup (or the one named) in full now and record the result"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_list">>]) -> backup_list();
cmd([<<"backup_verify">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, <<"--all">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, Name]) -> backup_verify(Name);
cmd(_) -> not_mine.

%%--------------------------------------------------------------------

backup_list() ->
    Dir = emqx_guard_emqx:backup_dir(),
    #{backup_timezone := Zone, backup_pins := Pins} = emqx_guard_settings:get(),
    case emqx_guard_backups:list(Dir) of
        {ok, []} ->
            line(text("No backups in ~ts", [Dir]));
        {ok, Backups} ->
            line(text("~B backup(s) in ~ts, newest first:", [length(Backups), Dir])),
            Running = maps:get(running, emqx_guard_scheduler:status()),
            Marked = [B#{pinned => lists:member(N, Pins)} || B = #{name := N} <- mark_in_progress(Running, Backups)],
            lists:foreach(fun(B) -> line(backup_line(Zone, B)) end, Marked);
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

%% @doc One backup as the listings show it: name, size, time, then (when B has them) its verdict
%% and when it was reached, and `pinned'.
-spec backup_line(binary(), #{name := binary(), size := non_neg_integer(), mtime := integer(), atom() => term()}) -> binary().
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
    Pinned = [<<"pinned">> || maps:get(pinned, B, false)],
    iolist_to_binary(["  ", lists:join("  ", Columns ++ Verified ++ Pinned)]).

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

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
