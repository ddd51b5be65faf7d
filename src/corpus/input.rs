//! Opening files (gzip or not) and reading bounded lines.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::{CorpusError, MAX_LINE_BYTES};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUFFER_BYTES: usize = 256 * 1024;

/// A byte stream over a corpus file, decompressed when it starts with the gzip
/// magic bytes whatever its name.
pub(crate) struct Input {
    pub(crate) reader: Box<dyn BufRead + Send>,
    gzip: bool,
    path: PathBuf,
}

/// Why a read failed. Decoder errors are a property of the file's content and
/// are reported like bad records; anything else is a real I/O error.
pub(crate) enum ReadFailure {
    Corrupt(io::Error),
    Io(io::Error),
}

impl Input {
    pub(crate) fn open(path: &Path) -> Result<Self, CorpusError> {
        let io_error = |source| CorpusError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let mut raw = BufReader::with_capacity(BUFFER_BYTES, file);
        let gzip = loop {
            match raw.fill_buf() {
                Ok(head) => break head.starts_with(&GZIP_MAGIC),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            }
        };
        // Multi-member, because `cat a.gz b.gz` and bgzip output are common
        // and a single-member decoder would silently stop after the first.
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                BUFFER_BYTES,
                MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        Ok(Input {
            reader,
            gzip,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn classify(&self, e: io::Error) -> ReadFailure {
        use io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        if self.gzip && matches!(e.kind(), InvalidData | InvalidInput | UnexpectedEof) {
            ReadFailure::Corrupt(e)
        } else {
            ReadFailure::Io(e)
        }
    }

    /// Turns a failure at `line` into the reason of a fatal issue, or an error.
    pub(crate) fn failure(
        &self,
        failure: ReadFailure,
        line: usize,
    ) -> Result<(usize, String), CorpusError> {
        match failure {
            ReadFailure::Corrupt(e) => Ok((
                line,
                format!("gzip stream is corrupt or truncated ({e}); stopped reading this file"),
            )),
            ReadFailure::Io(source) => Err(CorpusError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub(crate) fn io_error(&self, failure: ReadFailure) -> CorpusError {
        let (ReadFailure::Corrupt(source) | ReadFailure::Io(source)) = failure;
        CorpusError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

pub(crate) struct Line<'a> {
    /// 1-based.
    pub(crate) number: usize,
    /// Without the line terminator (`\n` or `\r\n`); empty when `too_long`.
    pub(crate) bytes: &'a [u8],
    pub(crate) too_long: bool,
}

/// Reads lines as bytes (so invalid UTF-8 is one bad record, not a dead file),
/// never buffering more than [`MAX_LINE_BYTES`] of one line.
pub(crate) struct LineReader {
    input: Input,
    buf: Vec<u8>,
    line: usize,
}

impl LineReader {
    pub(crate) fn new(input: Input) -> Self {
        LineReader {
            input,
            buf: Vec::new(),
            line: 0,
        }
    }

    pub(crate) fn next_line(&mut self) -> Result<Option<Line<'_>>, ReadFailure> {
        self.buf.clear();
        let mut too_long = false;
        let mut consumed_any = false;
        loop {
            let chunk = match self.input.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.input.classify(e)),
            };
            if chunk.is_empty() {
                if !consumed_any {
                    return Ok(None);
                }
                break;
            }
            consumed_any = true;
            let (piece, used, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + piece.len() > MAX_LINE_BYTES + 1 {
                    // +1 leaves room for the `\r` of a CRLF line at the cap.
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(piece);
                }
            }
            self.input.reader.consume(used);
            if ended {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE_BYTES {
            too_long = true;
            self.buf.clear();
        }
        self.line += 1;
        Ok(Some(Line {
            number: self.line,
            bytes: &self.buf,
            too_long,
        }))
    }

    /// See [`Input::failure`]; the failure happened on the line being read.
    pub(crate) fn failure(&self, failure: ReadFailure) -> Result<(usize, String), CorpusError> {
        self.input.failure(failure, self.line + 1)
    }

    pub(crate) fn io_error(&self, failure: ReadFailure) -> CorpusError {
        self.input.io_error(failure)
    }
}

pub(crate) fn too_long_reason() -> String {
    format!("record is longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES); skipped")
}
