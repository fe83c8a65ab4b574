//! `SArray` and `SMatrix` (Netmulticore's `Netmcore_array` and
//! `Netmcore_matrix`).

use std::pin::Pin;

use super::{pin_at, structure_common, Parts, Ref, Result, StructureError};
use crate::heap::{HeapOptions, Mutator, PinGuard, ReadGuard};
use crate::pool::Pool;
use crate::value::{Shared, SharedVec, Tuple3};

/// A shared array of `E` with a header `H`, growable with
/// [`grow`](SArray::grow).
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let a = mc::SArray::create(&pool, &(), &[1u64, 2, 3])?;
/// a.set(1, &20)?;
/// assert_eq!(*a.get(1)?, 20);
/// a.grow(5, &0)?;
/// assert_eq!(a.to_vec()?, [1, 20, 3, 0, 0]);
/// assert_eq!(a.read()?.iter().sum::<u64>(), 24);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SArray<E: Shared, H: Shared = ()> {
    parts: Parts<Vec<E>, H>,
}

structure_common!(SArray, SArrayDescr, [E: Shared], Vec<E>, "an [`SArray`]");

fn elem<E: Shared>(v: &SharedVec<E::Repr>, l: [usize; 2]) -> &E::Repr {
    &v[l[0]]
}

fn bounds(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(StructureError::OutOfBounds { index, len })
    }
}

impl<E: Shared, H: Shared> SArray<E, H> {
    /// Creates an empty array, then fills it with `fill`; when filling
    /// fails, both heaps are destroyed again.
    fn filled(
        pool: &Pool,
        header: &H,
        fill: impl FnOnce(&Mutator<'_>, Pin<&mut SharedVec<E::Repr>>) -> Result<()>,
    ) -> Result<Self> {
        let a = SArray {
            parts: Parts::create(pool, header, &Vec::new(), HeapOptions::new())?,
        };
        match a.parts.modify_try(fill) {
            Ok(()) => Ok(a),
            Err(e) => {
                let _ = a.parts.destroy();
                Err(e)
            }
        }
    }

    /// Creates an array holding copies of `values` (`Netmcore_array.create`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] when a heap cannot be created or the values
    /// cannot be copied (see [`Heap::create`](crate::Heap::create) and
    /// [`Mutator::add`](crate::Mutator::add)); the heaps made are destroyed
    /// again.
    pub fn create(pool: &Pool, header: &H, values: &[E]) -> Result<Self> {
        Self::filled(pool, header, |m, v| Ok(m.extend_from_slice(v, values)?))
    }

    /// Creates an array of `n` copies of `value` (`make`).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn make(pool: &Pool, header: &H, n: usize, value: &E) -> Result<Self> {
        Self::filled(pool, header, |m, mut v| {
            m.reserve(v.as_mut(), n)?;
            for _ in 0..n {
                m.push(v.as_mut(), value)?;
            }
            Ok(())
        })
    }

    /// Creates an array of `n` elements `f(0)`, ..., `f(n - 1)` (`init`).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn init(pool: &Pool, header: &H, n: usize, mut f: impl FnMut(usize) -> E) -> Result<Self> {
        Self::filled(pool, header, |m, mut v| {
            m.reserve(v.as_mut(), n)?;
            for i in 0..n {
                m.push(v.as_mut(), &f(i))?;
            }
            Ok(())
        })
    }

    /// The number of elements (`length`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn len(&self) -> Result<usize> {
        Ok(self.parts.data.read()?.len())
    }

    /// Whether the array is empty.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The element at `index`, in place under the shared lock (`get_ro`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `index` is past the end;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn get(&self, index: usize) -> Result<Ref<ReadGuard<'_, Vec<E>>, E::Repr>> {
        let g = self.parts.data.read()?;
        bounds(index, g.len())?;
        Ok(Ref::new(g, [index, 0], elem::<E>))
    }

    /// The element at `index`, pinned (`get_p`): a copy of the element
    /// made now, read without a lock while writers go on (see the [module
    /// docs](crate::structures#access)).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `index` is past the end;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::pin_part`](crate::Heap::pin_part).
    pub fn get_pinned(&self, index: usize) -> Result<PinGuard<'_, E>> {
        self.parts.data.try_pin_part(|v| {
            bounds(index, v.len())?;
            Ok(&v[index])
        })?
    }

    /// A copy of the element at `index` (`get_c`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `index` is past the end;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn get_copy(&self, index: usize) -> Result<E> {
        let g = self.parts.data.read()?;
        bounds(index, g.len())?;
        Ok(E::from_repr(&g[index]))
    }

    /// Replaces the element at `index` with a copy of `value` (`set`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `index` is past the end;
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify) and
    /// [`Mutator::set`](crate::Mutator::set).
    pub fn set(&self, index: usize, value: &E) -> Result<()> {
        self.parts
            .modify_try(|m, v| Ok(m.set(pin_at(v, index)?, value)?))
    }

    /// Grows the array to `n` elements, the new ones copies of `fill`
    /// (`grow`); does nothing when it has `n` or more. Existing elements are
    /// not copied again (one move of the element array, to a new one of
    /// `n`). When the pool is full, the array keeps its length; a process
    /// killed in the middle leaves it grown whole or not at all (after
    /// [`Heap::recover`](crate::Heap::recover) of its [`heap`](Self::heap)).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify) and
    /// [`Mutator::push`](crate::Mutator::push).
    pub fn grow(&self, n: usize, fill: &E) -> Result<()> {
        self.parts.modify_try(|m, v| {
            let len = v.len();
            if n <= len {
                return Ok(());
            }
            // SAFETY: the grown vector holds `v`'s elements, moved, and
            // replaces `v` in the store below, with no change in between.
            let grown = unsafe { m.vec_grown(&v, n - len, fill)? };
            // SAFETY: a vector of this heap's arrays, which only it refers
            // to once stored.
            unsafe { m.store_repr(v, grown)? };
            Ok(())
        })
    }

    /// The whole array, in place under the shared lock (`deref`, made safe).
    /// Derefs to [`SharedVec`], which derefs to a slice.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn read(&self) -> Result<ReadGuard<'_, Vec<E>>> {
        Ok(self.parts.data.read()?)
    }

    /// The whole array, pinned (see [`get_pinned`](Self::get_pinned)).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::pin`](crate::Heap::pin).
    pub fn pin(&self) -> Result<PinGuard<'_, Vec<E>>> {
        Ok(self.parts.data.pin()?)
    }

    /// A copy of the whole array.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::copy`](crate::Heap::copy).
    pub fn to_vec(&self) -> Result<Vec<E>> {
        Ok(self.parts.data.copy()?)
    }

    /// Changes the array under the exclusive lock: elements are changed in
    /// place through [`SharedVec::get_pin`] / [`SharedVec::iter_pin`] /
    /// [`SharedVec::as_mut_slice`] and the [`Mutator`].
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn modify<R>(
        &self,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut SharedVec<E::Repr>>) -> R,
    ) -> Result<R> {
        self.parts.modify(f)
    }
}

/// A shared matrix of `rows × cols` elements `E` (row-major), with a
/// header `H`.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let m = mc::SMatrix::init(&pool, &(), 2, 3, |r, c| (r * 10 + c) as i32)?;
/// assert_eq!(m.dim()?, (2, 3));
/// m.set(1, 2, &-1)?;
/// assert_eq!(*m.get(1, 2)?, -1);
/// assert_eq!(m.get_copy(0, 1)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SMatrix<E: Shared, H: Shared = ()> {
    parts: Parts<(usize, usize, Vec<E>), H>,
}

structure_common!(
    SMatrix,
    SMatrixDescr,
    [E: Shared],
    (usize, usize, Vec<E>),
    "an [`SMatrix`]"
);

type MatrixRepr<E> = Tuple3<usize, usize, SharedVec<<E as Shared>::Repr>>;

type MData<E> = (usize, usize, Vec<E>);
type MRef<'a, E> = Ref<ReadGuard<'a, MData<E>>, <E as Shared>::Repr>;
type MRow<'a, E> = Ref<ReadGuard<'a, MData<E>>, [<E as Shared>::Repr]>;

fn melem<E: Shared>(t: &MatrixRepr<E>, l: [usize; 2]) -> &E::Repr {
    &t.2[l[0]]
}

impl<E: Shared, H: Shared> SMatrix<E, H> {
    /// Creates an empty `rows × cols` matrix, then fills its elements with
    /// `fill`; when filling fails, both heaps are destroyed again.
    fn filled(
        pool: &Pool,
        header: &H,
        rows: usize,
        cols: usize,
        fill: impl FnOnce(&Mutator<'_>, Pin<&mut SharedVec<E::Repr>>) -> Result<()>,
    ) -> Result<Self> {
        if rows.checked_mul(cols).is_none() {
            return Err(StructureError::BadShape {
                rows,
                cols,
                elements: 0,
            });
        }
        let mx = SMatrix {
            parts: Parts::create(pool, header, &(rows, cols, Vec::new()), HeapOptions::new())?,
        };
        match mx.parts.modify_try(|m, t| fill(m, t.project().2)) {
            Ok(()) => Ok(mx),
            Err(e) => {
                let _ = mx.parts.destroy();
                Err(e)
            }
        }
    }

    /// Creates a matrix from `values` in row-major order; `values.len()`
    /// must be `rows * cols` (`Netmcore_matrix.create`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadShape`] when `values.len()` is not `rows * cols`,
    /// and the errors of [`SArray::create`].
    pub fn create(pool: &Pool, header: &H, rows: usize, cols: usize, values: &[E]) -> Result<Self> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(StructureError::BadShape {
                rows,
                cols,
                elements: values.len(),
            });
        }
        Self::filled(pool, header, rows, cols, |m, v| {
            Ok(m.extend_from_slice(v, values)?)
        })
    }

    /// Creates a matrix of copies of `value` (`make`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadShape`] when `rows * cols` overflows, and the
    /// errors of [`SArray::create`].
    pub fn make(pool: &Pool, header: &H, rows: usize, cols: usize, value: &E) -> Result<Self> {
        Self::filled(pool, header, rows, cols, |m, mut v| {
            m.reserve(v.as_mut(), rows * cols)?;
            for _ in 0..rows * cols {
                m.push(v.as_mut(), value)?;
            }
            Ok(())
        })
    }

    /// Creates a matrix whose element `(r, c)` is `f(r, c)` (`init`).
    ///
    /// # Errors
    ///
    /// [`StructureError::BadShape`] when `rows * cols` overflows, and the
    /// errors of [`SArray::create`].
    pub fn init(
        pool: &Pool,
        header: &H,
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize) -> E,
    ) -> Result<Self> {
        Self::filled(pool, header, rows, cols, |m, mut v| {
            m.reserve(v.as_mut(), rows * cols)?;
            for r in 0..rows {
                for c in 0..cols {
                    m.push(v.as_mut(), &f(r, c))?;
                }
            }
            Ok(())
        })
    }

    /// `(rows, cols)` (`dim`).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn dim(&self) -> Result<(usize, usize)> {
        let g = self.parts.data.read()?;
        Ok((g.0, g.1))
    }

    /// The position of `(r, c)` in the elements. The elements may have
    /// been made fewer than `rows * cols` through [`modify`](Self::modify):
    /// such an element is [`StructureError::OutOfBounds`] too.
    fn index(t: &MatrixRepr<E>, r: usize, c: usize) -> Result<usize> {
        bounds(r, t.0)?;
        bounds(c, t.1)?;
        // Overflows only for dimensions changed through `heap`: such an
        // element is missing too.
        let i = r
            .checked_mul(t.1)
            .and_then(|i| i.checked_add(c))
            .unwrap_or(usize::MAX);
        bounds(i, t.2.len())?;
        Ok(i)
    }

    /// The element at row `r`, column `c`, in place under the shared lock
    /// (`get_ro`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `(r, c)` is outside the matrix (or
    /// its element is missing); [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn get(&self, r: usize, c: usize) -> Result<MRef<'_, E>> {
        let g = self.parts.data.read()?;
        let i = Self::index(&g, r, c)?;
        Ok(Ref::new(g, [i, 0], melem::<E>))
    }

    /// The element at `(r, c)`, pinned (`get_p`; see [`SArray::get_pinned`]).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `(r, c)` is outside the matrix (or
    /// its element is missing); [`StructureError::Heap`] with the errors of
    /// [`Heap::pin_part`](crate::Heap::pin_part).
    pub fn get_pinned(&self, r: usize, c: usize) -> Result<PinGuard<'_, E>> {
        self.parts.data.try_pin_part(|g| {
            let i = Self::index(g, r, c)?;
            Ok(melem::<E>(g, [i, 0]))
        })?
    }

    /// A copy of the element at `(r, c)` (`get_c`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `(r, c)` is outside the matrix (or
    /// its element is missing); [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn get_copy(&self, r: usize, c: usize) -> Result<E> {
        let g = self.parts.data.read()?;
        let i = Self::index(&g, r, c)?;
        Ok(E::from_repr(&g.2[i]))
    }

    /// Replaces the element at `(r, c)` with a copy of `value` (`set`).
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `(r, c)` is outside the matrix (or
    /// its element is missing); [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify) and
    /// [`Mutator::set`](crate::Mutator::set).
    pub fn set(&self, r: usize, c: usize, value: &E) -> Result<()> {
        self.parts.modify_try(|m, t| {
            let i = Self::index(&t, r, c)?;
            Ok(m.set(pin_at(t.project().2, i)?, value)?)
        })
    }

    /// Row `r` as a slice, in place under the shared lock. Fails with
    /// [`StructureError::BadShape`] when [`modify`](Self::modify) left too
    /// few elements for the row.
    ///
    /// # Errors
    ///
    /// [`StructureError::OutOfBounds`] when `r` is past the last row;
    /// [`StructureError::BadShape`] when [`modify`](Self::modify) left too few
    /// elements for the row; [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn row(&self, r: usize) -> Result<MRow<'_, E>> {
        let g = self.parts.data.read()?;
        bounds(r, g.0)?;
        if (r + 1).checked_mul(g.1).is_none_or(|end| end > g.2.len()) {
            return Err(StructureError::BadShape {
                rows: g.0,
                cols: g.1,
                elements: g.2.len(),
            });
        }
        fn row<E: Shared>(t: &MatrixRepr<E>, l: [usize; 2]) -> &[E::Repr] {
            &t.2[l[0] * t.1..(l[0] + 1) * t.1]
        }
        Ok(Ref::new(g, [r, 0], row::<E>))
    }

    /// The whole matrix in place (row-major elements in field `.2`), under
    /// the shared lock.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn read(&self) -> Result<ReadGuard<'_, (usize, usize, Vec<E>)>> {
        Ok(self.parts.data.read()?)
    }

    /// A copy of all elements, row-major.
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::read`](crate::Heap::read).
    pub fn to_vec(&self) -> Result<Vec<E>> {
        let g = self.parts.data.read()?;
        Ok(<Vec<E>>::from_repr(&g.2))
    }

    /// Changes the elements (row-major) in place under the exclusive lock.
    /// Keep their number at `rows * cols`: accesses to elements made
    /// missing fail with [`StructureError::OutOfBounds`] (or
    /// [`StructureError::BadShape`] for [`row`](Self::row)).
    ///
    /// # Errors
    ///
    /// [`StructureError::Heap`] with the errors of
    /// [`Heap::modify`](crate::Heap::modify).
    pub fn modify<R>(
        &self,
        f: impl FnOnce(&Mutator<'_>, Pin<&mut SharedVec<E::Repr>>) -> R,
    ) -> Result<R> {
        self.parts.modify(|m, t| {
            let (_, _, v) = t.project();
            f(m, v)
        })
    }
}
