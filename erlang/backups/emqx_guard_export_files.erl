%% @doc The files of an export while it is made, and what a failed one leaves.
%%
%% Where the running EMQX writes its export where the option `out_dir' says (EMQX 5.8.5+,
%% `emqx_guard_emqx:export_out_dir_supported/0'), each run exports into a staging directory of its
%% own, `<backup dir>/.emqx_guard_export/<run>/' (mode 0700; EMQX's listing, retention and copies
%% never look into subdirectories), and the finished tarball is then moved into the backup
%% directory under EMQX's own name (`place/2': a hard link and an unlink, so it appears there
%% whole, keeps its inode and never replaces a file of that name). A half-written export is then
%% never in the backup directory, where the dashboard lists it and an operator might import it,
%% and what a run made is exactly its staging directory. Older EMQX ignore `out_dir' and write into
%% the backup directory itself.
%%
%% After a failed export (`discard/3') only what this run provably made is removed: the tarball
%% EMQX named when it started (`emqx_guard_emqx:export/2' hears the name through EMQX's
%% `print_fun' before the file is opened) and EMQX's staging directory of the same name, and
%% the run's own staging directory. A tarball that verifies as a complete export is never
%% removed (it is moved into place and recorded instead). Exports someone else made meanwhile
%% (`emqx ctl data export', the dashboard, a copy from another node) have other names and are
%% never touched. What exports killed with their node left is `emqx_guard_leftovers''s.
-module(emqx_guard_export_files).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([prepare/1, export_opts/1, place/2, discard/3]).
-export([disk_facts/2]).
%% What the sweep of leftovers (`emqx_guard_leftovers') shares with a run's export.
-export([staging_root/1, move/2]).

-export_type([slot/0, check/0]).

%% The staging directories of the plugin's own exports, under the backup directory.
-define(STAGING, ".emqx_guard_export").

%% Where one run exports: the backup directory and, where EMQX supports `out_dir', the run's own
%% staging directory.
-opaque slot() :: #{dir := file:filename(), out_dir := file:filename() | undefined}.
%% How a failed run tells a complete tarball (`{complete, Record}': it verified, Record is the
%% verdict to keep) from a broken one.
-type check() :: fun((file:filename()) -> {complete, emqx_guard_nif:record()} | incomplete).
%% @doc Where a run exports into BackupDir: a new staging directory of its own where EMQX
%% supports `out_dir', else the backup directory itself (also when the staging directory cannot
%% be made: EMQX then reports the problem of the backup directory itself).
-spec prepare(file:filename_all()) -> slot().
prepare(BackupDir) ->
    Dir = to_list(BackupDir),
    case emqx_guard_emqx:export_out_dir_supported() of
        false ->
            #{dir => Dir, out_dir => undefined};
        true ->
            Run = integer_to_list(erlang:system_time(millisecond)) ++ "-" ++ integer_to_list(erlang:unique_integer([positive])),
            Staging = filename:join(staging_root(Dir), Run),
            case filelib:ensure_path(Staging) of
                ok ->
                    _ = file:change_mode(filename:dirname(Staging), 8#700),
                    #{dir => Dir, out_dir => Staging};
                {error, Posix} ->
                    ?LOG_WARNING(#{msg => emqx_guard_export_staging_failed, dir => bin(Staging), reason => Posix}),
                    #{dir => Dir, out_dir => undefined}
            end
    end.

%% @doc The options for `emqx_guard_emqx:export/2'.
-spec export_opts(slot()) -> #{out_dir => file:filename()}.
export_opts(#{out_dir := undefined}) -> #{};
export_opts(#{out_dir := Dir}) -> #{out_dir => Dir}.

%% @doc Puts the finished export Path in the backup directory under its own name and removes the
%% run's staging directory: `{ok, FinalPath}', or `{error, {export_not_placed, #{name, posix}}}'
%% (`eexist': a file of that name is there already; it is left alone and this run's export is
%% removed). An export EMQX wrote into the backup directory itself stays where it is.
-spec place(slot(), file:filename_all()) ->
    {ok, binary()} | {error, {export_not_placed, #{name := binary(), posix := atom()}}}.
place(Slot = #{dir := Dir, out_dir := Out}, Path0) ->
    Path = to_list(Path0),
    Result =
        case Out =/= undefined andalso filename:dirname(Path) =:= Out of
            false ->
                {ok, bin(Path)};
            true ->
                Final = filename:join(Dir, filename:basename(Path)),
                case move(Path, Final) of
                    ok -> {ok, bin(Final)};
                    {error, Posix} -> {error, {export_not_placed, #{name => bin(filename:basename(Path)), posix => Posix}}}
                end
        end,
    ok = clear(Slot),
    Result.

%% @doc After a failed export: removes what it made (see the module doc). Made is what
%% `emqx_guard_emqx:export/2' learnt (`#{tarball => Path}' or `#{}'); Check tells a complete
%% tarball from a broken one. Returns the names removed: the tarball's, and EMQX's staging
%% directory's with a trailing `/'. Each removal is logged.
-spec discard(slot(), #{tarball => binary()}, check()) -> [binary()].
discard(Slot, Made, Check) ->
    Removed =
        case Made of
            #{tarball := Tarball} -> own_leftovers(Slot, to_list(Tarball), Check);
            _ -> []
        end,
    ok = clear(Slot),
    Removed.

own_leftovers(Slot, Tarball, Check) ->
    Staging = filename:rootname(Tarball, ".gz"),
    StagingDir = filename:rootname(Staging, ".tar"),
    Dir =
        case remove_dir(StagingDir) of
            true -> [bin(filename:basename(StagingDir) ++ "/")];
            false -> []
        end,
    File =
        case file:read_link_info(Tarball) of
            {ok, #file_info{type = regular}} ->
                case Check(Tarball) of
                    {complete, Record} -> keep_complete(Slot, Tarball, Record);
                    incomplete -> removed_file(Tarball)
                end;
            _ ->
                []
        end,
    Dir ++ File.

%% A failed run's tarball that verifies is a good backup: it goes into the backup directory (if
%% it is not there already) and its verdict is recorded; it is not removed.
keep_complete(Slot, Tarball, Record) ->
    Placed =
        case place(Slot, Tarball) of
            {ok, Final} -> Final;
            {error, _} -> undefined
        end,
    case Placed of
        undefined ->
            [];
        _ ->
            ok = emqx_guard_verifications:add([Record]),
            ?LOG_WARNING(#{msg => emqx_guard_export_complete_kept, file => Placed}),
            []
    end.

removed_file(Path) ->
    Name = bin(filename:basename(Path)),
    case file:delete(Path) of
        ok ->
            ?LOG_INFO(#{msg => emqx_guard_backup_partial_removed, file => Name}),
            [Name];
        {error, enoent} ->
            [];
        {error, Posix} ->
            ?LOG_WARNING(#{msg => emqx_guard_backup_partial_not_removed, file => Name, reason => Posix}),
            []
    end.

remove_dir(Path) ->
    case file:read_link_info(Path) of
        {ok, #file_info{type = directory}} ->
            case file:del_dir_r(Path) of
                ok ->
                    ?LOG_INFO(#{msg => emqx_guard_backup_partial_removed, dir => bin(Path)}),
                    true;
                {error, Posix} ->
                    ?LOG_WARNING(#{msg => emqx_guard_backup_partial_not_removed, dir => bin(Path), reason => Posix}),
                    false
            end;
        _ ->
            false
    end.

%% Removes the run's staging directory, and the staging root when no other run's is left.
clear(#{out_dir := undefined}) ->
    ok;
clear(#{out_dir := Staging}) ->
    _ = file:del_dir_r(Staging),
    _ = file:del_dir(filename:dirname(Staging)),
    ok.

%% @doc The directory under BackupDir that holds the runs' own staging directories.
-spec staging_root(file:filename_all()) -> file:filename_all().
staging_root(BackupDir) ->
    filename:join(BackupDir, ?STAGING).

%% @doc Src into Dst without ever replacing a file at Dst: a hard link, then Src unlinked; where
%% the file system has no hard links, a rename after checking that Dst is free. `{error, eexist}'
%% when Dst is taken.
-spec move(file:filename_all(), file:filename_all()) -> ok | {error, atom()}.
move(Src, Dst) ->
    case file:make_link(Src, Dst) of
        ok ->
            _ = file:delete(Src),
            ok;
        {error, eexist} ->
            {error, eexist};
        {error, _NoLinks} ->
            case file:read_link_info(Dst) of
                {error, enoent} -> file:rename(Src, Dst);
                {ok, _} -> {error, eexist};
                {error, _} = Error -> Error
            end
    end.

%% @doc What an export that failed with Posix needs said: the backup directory Dir, and for a full
%% disk (`enospc', `edquot') the space `available' on its file system now (a NIF `statvfs'; left
%% out when it cannot be read) and the `last_size' of the newest backup there (left out when
%% there is none).
-spec disk_facts(file:filename_all(), atom()) ->
    #{dir := binary(), available => non_neg_integer(), last_size => non_neg_integer()}.
disk_facts(Dir, Posix) when Posix =:= enospc; Posix =:= edquot ->
    Available =
        case emqx_guard_core:disk_space(Dir) of
            {ok, #{available := A}} -> #{available => A};
            {error, _} -> #{}
        end,
    Last =
        case emqx_guard_core:list_backups(Dir) of
            {ok, [#{size := Size} | _]} -> #{last_size => Size};
            _ -> #{}
        end,
    maps:merge(#{dir => bin(Dir)}, maps:merge(Available, Last));
disk_facts(Dir, _Posix) ->
    #{dir => bin(Dir)}.

to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(L) -> L.

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
