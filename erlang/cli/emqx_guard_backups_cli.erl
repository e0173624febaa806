%% @doc The `emqx ctl guard' command `backup_verify' (each file's read printed as it starts and
%% ends, `emqx_guard_steps_cli'), the usage line of `backup_list' (the listing is
%% `emqx_guard_observe_cli''s) and `backup_line/2', one backup as retention's dry run and
%% `backup_list --why' show it (retention's commands: `emqx_guard_retention_cli').
%% Parses and prints only (`emqx_guard_backups' does the work; a failure's line is
%% `emqx_guard_outcome:format_error/1''s); called by `emqx_guard_cli', which catches and reports
%% any crash.
-module(emqx_guard_backups_cli).

-import(emqx_guard_cli, [line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, backup_line/2]).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_list [--json]", "List the backups, newest first, with size, time, verification, when checked and pins"},
        {"guard backup_verify [<name>|--all]", "Read every backup (or the one named) in full now and record the result"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_verify">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, <<"--all">>]) -> backup_verify(all);
cmd([<<"backup_verify">>, Name]) -> backup_verify(Name);
cmd(_) -> not_mine.

%%--------------------------------------------------------------------

%% @doc One backup as retention's listings show it: name, size, time, then (when B has them) its
%% verdict and when it was reached, and `pinned'.
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
    case emqx_guard_backups:verify_all(Dir, Which, emqx_guard_steps:throttled(fun emqx_guard_steps_cli:print/1)) of
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
